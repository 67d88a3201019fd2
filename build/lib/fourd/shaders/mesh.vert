#version 330 core
// Textured, lit triangle meshes (synthetic captures, mesh preview). Matrices come from
// fourd.structures.cameras (the OpenCV→GL conversion lives there and only there).
layout(location = 0) in vec3 in_position;
layout(location = 1) in vec3 in_normal;
layout(location = 2) in vec2 in_uv;
layout(location = 3) in vec4 in_color;

uniform mat4 u_view;
uniform mat4 u_proj;

out vec3 v_world;
out vec3 v_normal;
out vec2 v_uv;
out vec4 v_color;
out float v_depth;

void main() {
    vec4 cam = u_view * vec4(in_position, 1.0);
    v_world = in_position;
    v_normal = in_normal;
    v_uv = in_uv;
    v_color = in_color;
    v_depth = -cam.z;  // OpenCV camera z (distance along the optical axis)
    gl_Position = u_proj * cam;
}
