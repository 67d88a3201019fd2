#version 330 core
// One depth-peeling layer: keep the nearest splat strictly behind the previous layer's, in
// (depth, index) order, and write its index, depth and squared distance to its centre.
// With BAKED defined (the baked-point renderer) it also writes the splat's premultiplied colour,
// α = density · (1 − d²/r²) clamped to [0, 1], for compositing.
flat in int v_index;
flat in float v_z;
flat in vec2 v_center;
flat in float v_r2;
#ifdef BAKED
flat in vec3 v_color;
flat in float v_density;
#endif

uniform int u_layer;
uniform sampler2D u_prev_zd;      // previous layer: (z, d²)
uniform isampler2D u_prev_index;  // previous layer: index (−1 where empty)
uniform float u_height;

layout(location = 0) out int out_index;
layout(location = 1) out vec2 out_zd;
#ifdef BAKED
layout(location = 2) out vec4 out_rgba;
#endif

void main() {
    vec2 pixel = vec2(gl_FragCoord.x, u_height - gl_FragCoord.y);  // OpenCV pixel centre (x + ½, y + ½)
    vec2 d = pixel - v_center;
    float d2 = dot(d, d);
    if (d2 >= v_r2) discard;
    if (u_layer > 0) {
        ivec2 px = ivec2(gl_FragCoord.xy);
        int prev = texelFetch(u_prev_index, px, 0).r;
        if (prev < 0) discard;
        float pz = texelFetch(u_prev_zd, px, 0).r;
        if (v_z < pz || (v_z == pz && v_index <= prev)) discard;
    }
    out_index = v_index;
    out_zd = vec2(v_z, d2);
#ifdef BAKED
    float alpha = clamp(v_density * (1.0 - d2 / v_r2), 0.0, 1.0);
    out_rgba = vec4(v_color * alpha, alpha);
#endif
}
