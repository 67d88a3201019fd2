#version 430 core
// One-pass K-nearest rasterization, step 2 of 2: walk each pixel's fragment list and keep the
// K nearest in (depth, index) order by insertion into a sorted array. Without BAKED it writes the
// K indices (−1 where fewer), rows top first as the Fragments contract stores them; with BAKED it
// composites the K nearest front to back (premultiplied colour, as accumulate.frag) and writes
// the colour over the background to the output image.
layout(local_size_x = 8, local_size_y = 8) in;

// K (the number kept) is compiled in: the sorted arrays then live in registers and the insertion
// below is a fixed network of compare-and-swaps with no data-dependent indexing.
uniform ivec2 u_size;  // W, H
uniform int u_y0;      // first GL row of the band being resolved
uniform int u_y1;      // one past its last

layout(binding = 0, r32ui) uniform readonly uimage2D u_head;
layout(std430, binding = 1) readonly buffer Nodes { uint nodes[]; };
#ifdef BAKED
#define NODE_WORDS 5u
uniform vec3 u_background;
layout(binding = 1, rgba8) uniform writeonly image2D u_out;
#else
#define NODE_WORDS 3u
layout(std430, binding = 2) writeonly buffer Indices { int out_index[]; };
#endif

bool nearer(float za, int ia, float zb, int ib) { return za < zb || (za == zb && ia < ib); }

void main() {
    ivec2 p = ivec2(gl_GlobalInvocationID.xy) + ivec2(0, u_y0);
    if (p.x >= u_size.x || p.y >= u_y1) return;
    float zs[K];
    int ids[K];
    uint nd[K];
    for (int k = 0; k < K; ++k) { zs[k] = 1.0 / 0.0; ids[k] = 0x7fffffff; nd[k] = 0xffffffffu; }
    uint node = imageLoad(u_head, p).r;
    while (node != 0xffffffffu) {
        uint at = node * NODE_WORDS;
        float z = uintBitsToFloat(nodes[at]);
        int id = int(nodes[at + 1u]);
        uint cur = node;
        node = nodes[at + 2u];
        if (!nearer(z, id, zs[K - 1], ids[K - 1])) continue;  // behind the K kept so far
        for (int k = 0; k < K; ++k) {  // insert: everything behind it moves one slot back
            bool lt = nearer(z, id, zs[k], ids[k]);
            float tz = zs[k]; int ti = ids[k]; uint tn = nd[k];
            zs[k] = lt ? z : tz; ids[k] = lt ? id : ti; nd[k] = lt ? cur : tn;
            z = lt ? tz : z; id = lt ? ti : id; cur = lt ? tn : cur;
        }
    }
#ifdef BAKED
    vec4 acc = vec4(0.0);
    for (int k = 0; k < K; ++k) {
        if (nd[k] == 0xffffffffu) break;
        uint at = nd[k] * NODE_WORDS;
        vec4 rgba = vec4(unpackHalf2x16(nodes[at + 3u]), unpackHalf2x16(nodes[at + 4u]));
        acc += (1.0 - acc.a) * rgba;
    }
    imageStore(u_out, p, vec4(acc.rgb + (1.0 - acc.a) * u_background, 1.0));
#else
    int base = ((u_size.y - 1 - p.y) * u_size.x + p.x) * K;
    for (int k = 0; k < K; ++k) out_index[base + k] = nd[k] == 0xffffffffu ? -1 : ids[k];
#endif
}
