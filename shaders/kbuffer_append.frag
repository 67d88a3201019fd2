#version 430 core
// One-pass K-nearest rasterization, step 1 of 2: every splat fragment that covers a pixel centre
// is appended to that pixel's linked list (atomic counters hand out node slots, the head image
// holds each pixel's newest node). The node pool is split in STRIPES slices, one per diagonal
// stripe of 64-pixel blocks, each with its own counter: the rasterizer's threads work on
// different blocks, so they rarely bump the same counter (one shared counter measured ~13 % slower
// on llvmpipe). Nodes past a slice's capacity are counted but not stored: the host reads the
// counters, sees the overflow and draws again with a larger pool.
// kbuffer_resolve.comp then keeps the K nearest per pixel in (depth, index) order — the same
// order as the K-pass peeler (peel.frag), so the result does not depend on fragment order.
flat in int v_index;
flat in float v_z;
flat in vec2 v_center;
flat in float v_r2;
#ifdef BAKED
flat in vec3 v_color;
flat in float v_density;
#endif

uniform float u_height;
uniform uint u_capacity;  // nodes the buffer holds

layout(binding = 0, r32ui) uniform coherent uimage2D u_head;  // 0xffffffff = empty
layout(std430, binding = 1) buffer Nodes { uint nodes[]; };  // NODE_WORDS words per node
layout(std430, binding = 3) buffer Counters { uint counters[]; };  // stripe s at [16·s] (own cache line)
#define STRIPES 4u

#ifdef BAKED
#define NODE_WORDS 5u  // z, index, next, rgba as two half2
#else
#define NODE_WORDS 3u  // z, index, next
#endif

void main() {
    vec2 pixel = vec2(gl_FragCoord.x, u_height - gl_FragCoord.y);  // OpenCV pixel centre (x + ½, y + ½)
    vec2 d = pixel - v_center;
    float d2 = dot(d, d);
    if (d2 >= v_r2) discard;
    uint stripe = ((uint(gl_FragCoord.x) >> 6) + (uint(gl_FragCoord.y) >> 6)) & (STRIPES - 1u);
    uint slice = u_capacity / STRIPES;
    uint k = atomicAdd(counters[16u * stripe], 1u);
    if (k >= slice) discard;
    uint n = stripe * slice + k;
    uint next = imageAtomicExchange(u_head, ivec2(gl_FragCoord.xy), n);
    uint at = n * NODE_WORDS;
    nodes[at] = floatBitsToUint(v_z);
    nodes[at + 1u] = uint(v_index);
    nodes[at + 2u] = next;
#ifdef BAKED
    float alpha = clamp(v_density * (1.0 - d2 / v_r2), 0.0, 1.0);
    vec4 rgba = vec4(v_color * alpha, alpha);
    nodes[at + 3u] = packHalf2x16(rgba.rg);
    nodes[at + 4u] = packHalf2x16(rgba.ba);
#endif
    discard;  // nothing goes to the framebuffer
}
