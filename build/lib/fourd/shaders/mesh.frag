#version 330 core
#include "lighting.glsl"

in vec3 v_world;
in vec3 v_normal;
in vec2 v_uv;
in vec4 v_color;
in float v_depth;

uniform sampler2D u_texture;
uniform bool u_has_texture;
uniform vec4 u_base_color;
uniform bool u_lit;

layout(location = 0) out vec4 out_color;
layout(location = 1) out float out_depth;

void main() {
    vec4 albedo = u_base_color * v_color;
    if (u_has_texture) albedo *= texture(u_texture, v_uv);
    float light = u_lit ? lambert_light(v_world, v_normal) : 1.0;
    out_color = vec4(clamp(albedo.rgb * light, 0.0, 1.0), 1.0);
    out_depth = v_depth;
}
