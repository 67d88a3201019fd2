#version 330 core
// One peeled layer of baked points: the nearest splat behind the previous layer (as peel.frag),
// writing its index and depth for the next pass and its premultiplied colour for compositing.
flat in int v_index;
flat in float v_z;
flat in vec2 v_center;
flat in float v_r2;
flat in vec3 v_color;
flat in float v_density;

uniform int u_layer;
uniform sampler2D u_prev_zd;
uniform isampler2D u_prev_index;
uniform float u_height;

layout(location = 0) out int out_index;
layout(location = 1) out vec2 out_zd;
layout(location = 2) out vec4 out_rgba;

void main() {
    vec2 pixel = vec2(gl_FragCoord.x, u_height - gl_FragCoord.y);
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
    float alpha = clamp(v_density * (1.0 - d2 / v_r2), 0.0, 1.0);
    out_index = v_index;
    out_zd = vec2(v_z, d2);
    out_rgba = vec4(v_color * alpha, alpha);
}
