#version 330 core
// Baked frames for display: point sprites with per-point colour (view-independent RGB plus a
// degree-1 SH residual), density and radius; the render mode picks what colour means.
// With VIEWS defined the colour is the trained model's own (fourd/model/appearance.py,
// blend_colors): a softmax blend of the point's colour in the chosen nearest training cameras,
// read from per-camera tables, plus the SH residual; in_rgb is then the fallback colour.
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

#ifdef VIEWS
#define MAX_SELECT 8
uniform samplerBuffer u_src;    // texel s·N + i: colour of point i in source s, alpha 1 where s sees it
uniform samplerBuffer u_logit;  // texel s·N + i: learned blend logit
uniform isamplerBuffer u_shv;   // u_sh_texels texels per point: int8 coefficients, basis-major then rgb
uniform int u_n;                // points in the frame
uniform int u_nsel;             // sources blended
uniform int u_sel[MAX_SELECT];  // their table rows
uniform vec3 u_src_eye[MAX_SELECT];
uniform float u_prior;
uniform float u_sh_scale;
uniform int u_sh_basis;         // 0 (no residual), 1, 4, 9 or 16
uniform int u_sh_texels;
uniform float u_sh_step[16];    // dequantization step per basis function

void sh_basis(vec3 d, out float Y[16]) {  // fourd/model/sh.py's order and constants
    float x = d.x, y = d.y, z = d.z, xx = x * x, yy = y * y, zz = z * z;
    Y[0] = 0.28209479177387814;
    Y[1] = -0.4886025119029199 * y; Y[2] = 0.4886025119029199 * z; Y[3] = -0.4886025119029199 * x;
    Y[4] = 1.0925484305920792 * x * y; Y[5] = -1.0925484305920792 * y * z;
    Y[6] = 0.31539156525252005 * (2.0 * zz - xx - yy); Y[7] = -1.0925484305920792 * x * z;
    Y[8] = 0.5462742152960396 * (xx - yy);
    Y[9] = -0.5900435899266435 * y * (3.0 * xx - yy); Y[10] = 2.890611442640554 * x * y * z;
    Y[11] = -0.4570457994644658 * y * (4.0 * zz - xx - yy); Y[12] = 0.3731763325901154 * z * (2.0 * zz - 3.0 * xx - 3.0 * yy);
    Y[13] = -0.4570457994644658 * x * (4.0 * zz - xx - yy); Y[14] = 1.445305721320277 * z * (xx - yy);
    Y[15] = -0.5900435899266435 * x * (xx - 3.0 * yy);
}

vec3 model_color(vec3 d) {
    float logit[MAX_SELECT];
    vec3 rgb[MAX_SELECT];
    bool seen[MAX_SELECT];
    float top = -1e30;
    for (int k = 0; k < u_nsel; ++k) {
        int texel = u_sel[k] * u_n + gl_VertexID;
        vec4 c = texelFetch(u_src, texel);
        seen[k] = c.a > 0.5;
        rgb[k] = c.rgb;
        logit[k] = texelFetch(u_logit, texel).r + u_prior * dot(normalize(in_position - u_src_eye[k]), d);
        if (seen[k]) top = max(top, logit[k]);
    }
    vec3 color = vec3(0.0);
    float total = 0.0;
    for (int k = 0; k < u_nsel; ++k) {
        if (!seen[k]) continue;
        float w = exp(logit[k] - top);
        color += w * rgb[k];
        total += w;
    }
    color = total > 0.0 ? color / total : in_rgb;
    if (u_sh_basis > 0) {
        float Y[16];
        sh_basis(d, Y);
        vec3 acc = vec3(0.0);
        for (int j = 0; j < u_sh_texels; ++j) {
            ivec4 q = texelFetch(u_shv, gl_VertexID * u_sh_texels + j);
            for (int c = 0; c < 4; ++c) {
                int e = 4 * j + c;
                int b = e / 3;
                if (b < u_sh_basis) acc[e - 3 * b] += Y[b] * u_sh_step[b] * float(q[c]);
            }
        }
        color += u_sh_scale * tanh(acc);
    }
    return color;
}
#endif

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
#ifdef VIEWS
    vec3 rgb = model_color(d);
#else
    // real SH, degree 1: Y = 0.4886 · (−y, z, −x)
    vec3 y1 = 0.4886025119029199 * vec3(-d.y, d.z, -d.x);
    // clamped: the fitted residual extrapolates linearly and must not push a colour out of range
    vec3 rgb = clamp(in_rgb + y1.x * in_sh0 + y1.y * in_sh1 + y1.z * in_sh2, 0.0, 1.0);
#endif
    if (u_mode == 1) rgb = ramp((s.z - u_range.x) / (u_range.y - u_range.x));
    else if (u_mode == 2) rgb = vec3(1.0);
    else if (u_mode == 3) rgb = ramp((in_radius - u_range.x) / (u_range.y - u_range.x));
    v_color = rgb;
    float size = sprite_size(s.radius);
    bool off_screen = s.center.x < 0.0 || s.center.y < 0.0 || s.center.x >= u_size.x || s.center.y >= u_size.y;
    if (!s.visible || size > u_max_point_size || off_screen) {
        gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
        gl_PointSize = 1.0;
        return;
    }
    gl_PointSize = size;
    gl_Position = splat_clip(s.center, s.z);
}
