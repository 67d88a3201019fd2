#version 330 core
// Depth peeling, splats as point sprites. GL discards a point whose centre leaves the viewport,
// and caps sprite sizes, so splats centred off-screen or wider than the cap are drawn by
// peel_quads.vert in the same pass (DepthPeeler picks them); here they are skipped explicitly.
#include "splat.glsl"

layout(location = 0) in vec3 in_position;
layout(location = 1) in float in_radius;
uniform float u_max_point_size;

flat out int v_index;
flat out float v_z;
flat out vec2 v_center;
flat out float v_r2;

void main() {
    Splat s = project_splat(in_position, in_radius);
    v_index = gl_VertexID;
    v_z = s.z;
    v_center = s.center;
    v_r2 = s.radius * s.radius;
    float size = sprite_size(s.radius);
    bool off_screen = s.center.x < 0.0 || s.center.y < 0.0 || s.center.x >= u_size.x || s.center.y >= u_size.y;
    if (!s.visible || size > u_max_point_size || off_screen) {
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);  // outside the clip volume: not drawn here
        gl_PointSize = 1.0;
        return;
    }
    gl_PointSize = size;
    gl_Position = splat_clip(s.center, s.z);
}
