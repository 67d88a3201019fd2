#version 330 core
// Accumulated colour over the background, pixel for pixel (the image may be the bottom-left part
// of a larger allocation: the viewport and the accumulation buffer share their origin).
uniform sampler2D u_accum;
uniform vec3 u_background;
out vec4 out_color;
void main() {
    vec4 a = texelFetch(u_accum, ivec2(gl_FragCoord.xy), 0);
    out_color = vec4(a.rgb + (1.0 - a.a) * u_background, 1.0);
}
