// Point splats exactly as fourd/structures/fragments.py defines them: project with the OpenCV
// camera (world→camera R, T; intrinsics K), pixel radius r_px = f_y · r / z, depth = camera z.
uniform mat3 u_R;       // world → camera rotation (OpenCV axes)
uniform vec3 u_T;
uniform vec4 u_K;       // fx, fy, cx, cy
uniform float u_skew;
uniform vec2 u_size;    // W, H in pixels
uniform float u_near;
uniform float u_far;

struct Splat {
    vec2 center;   // OpenCV pixel coordinates (u, v), v down
    float z;       // camera depth
    float radius;  // pixels
    bool visible;
};

Splat project_splat(vec3 world, float world_radius) {
    Splat s;
    vec3 c = u_R * world + u_T;
    s.z = c.z;
    float x = c.x / c.z;
    float y = c.y / c.z;
    s.center = vec2(u_K.x * x + u_skew * y + u_K.z, u_K.y * y + u_K.w);
    s.radius = u_K.y * world_radius / c.z;
    s.visible = c.z > u_near && c.z < u_far && s.radius > 0.0;
    return s;
}

// clip-space position of a pixel-space point at camera depth z (depth linear in z)
vec4 splat_clip(vec2 pixel, float z) {
    vec2 ndc = vec2(2.0 * pixel.x / u_size.x - 1.0, 1.0 - 2.0 * pixel.y / u_size.y);
    return vec4(ndc, 2.0 * (z - u_near) / (u_far - u_near) - 1.0, 1.0);
}

// Side of the point sprite that holds every pixel centre strictly within radius r of the centre:
// the square of side 2r contains the disc; the small margin covers the rasterizer snapping the
// centre to its sub-pixel grid (Mesa: 1/256 px). Anything larger only adds fragments that the
// coverage test discards (2r + 2 cost llvmpipe ~15 % more per frame, bench_viewer.py).
float sprite_size(float radius_px) {
    return 2.0 * radius_px + 0.05;
}
