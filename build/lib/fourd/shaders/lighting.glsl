// Fixed world-space lighting so a surface looks the same from every camera (Lambertian):
// ambient plus one key light tilted from the up axis. Two-sided: normals face the viewer.
uniform vec3 u_up;
uniform vec3 u_eye;

float lambert_light(vec3 world_pos, vec3 normal) {
    vec3 n = normalize(normal);
    if (dot(n, u_eye - world_pos) < 0.0) n = -n;
    vec3 side = normalize(cross(u_up, vec3(0.3, 0.2, 0.9)));
    vec3 key = normalize(u_up + 0.6 * side);
    return 0.45 + 0.55 * max(dot(n, key), 0.0);
}
