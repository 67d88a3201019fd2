#version 330 core
// Baked frames for display: point sprites with per-point colour (view-independent RGB plus a
// degree-1 SH residual), density and radius; the render mode picks what colour means.
#include "splat.glsl"

layout(location = 0) in vec3 in_position;
layout(location = 1) in float in_radius;
layout(location = 2) in float in_density;
layout(location = 3) in vec3 in_rgb;
layout(location = 4) in vec3 in_sh0;   // residual coefficient of Y_1 for r, g, b
layout(location = 5) in vec3 in_sh1;
layout(location = 6) in vec3 in_sh2;

uniform float u_max_point_size;
uniform float u_radius_scale;
uniform vec3 u_eye;
uniform int u_mode;        // 0 rgb, 1 depth, 2 alpha, 3 radius
uniform vec2 u_range;      // depth range (mode 1) or radius range (mode 3)

flat out int v_index;
flat out float v_z;
flat out vec2 v_center;
flat out float v_r2;
flat out vec3 v_color;
flat out float v_density;

vec3 ramp(float t) {  // a simple perceptual-ish colour ramp for depth / radius
    t = clamp(t, 0.0, 1.0);
    return clamp(vec3(1.5 * t, 1.5 - abs(2.0 * t - 1.0) * 1.5, 1.5 * (1.0 - t)), 0.0, 1.0);
}

void main() {
    float radius = in_radius * u_radius_scale;
    Splat s = project_splat(in_position, radius);
    v_index = gl_VertexID;
    v_z = s.z;
    v_center = s.center;
    v_r2 = s.radius * s.radius;
    v_density = in_density;
    vec3 d = normalize(in_position - u_eye);
    // real SH, degree 1: Y = 0.4886 · (−y, z, −x)
    vec3 y1 = 0.4886025119029199 * vec3(-d.y, d.z, -d.x);
    vec3 rgb = in_rgb + y1.x * in_sh0 + y1.y * in_sh1 + y1.z * in_sh2;
    if (u_mode == 1) rgb = ramp((s.z - u_range.x) / (u_range.y - u_range.x));
    else if (u_mode == 2) rgb = vec3(1.0);
    else if (u_mode == 3) rgb = ramp((in_radius - u_range.x) / (u_range.y - u_range.x));
    v_color = rgb;
    float size = 2.0 * s.radius + 2.0;
    bool off_screen = s.center.x < 0.0 || s.center.y < 0.0 || s.center.x >= u_size.x || s.center.y >= u_size.y;
    if (!s.visible || size > u_max_point_size || off_screen) {
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        gl_PointSize = 1.0;
        return;
    }
    gl_PointSize = size;
    gl_Position = splat_clip(s.center, s.z);
}
