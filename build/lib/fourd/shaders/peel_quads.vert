#version 330 core
// Depth peeling, splats too large for point sprites: one instanced quad per splat.
#include "splat.glsl"

layout(location = 0) in int in_index;   // per instance: which point
uniform samplerBuffer u_points;         // xyz + radius per point

flat out int v_index;
flat out float v_z;
flat out vec2 v_center;
flat out float v_r2;

void main() {
    vec4 p = texelFetch(u_points, in_index);
    Splat s = project_splat(p.xyz, p.w);
    v_index = in_index;
    v_z = s.z;
    v_center = s.center;
    v_r2 = s.radius * s.radius;
    vec2 corner = vec2(gl_VertexID & 1, gl_VertexID >> 1) * 2.0 - 1.0;  // triangle strip of 4
    gl_Position = s.visible ? splat_clip(s.center + corner * (s.radius + 1.0), s.z) : vec4(2.0, 2.0, 2.0, 1.0);
}
