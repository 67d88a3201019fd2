#version 330 core
// Accumulated colour over the background.
in vec2 v_uv;
uniform sampler2D u_accum;
uniform vec3 u_background;
out vec4 out_color;
void main() {
    vec4 a = texture(u_accum, v_uv);
    out_color = vec4(a.rgb + (1.0 - a.a) * u_background, 1.0);
}
