#version 330 core
// Triangle ids for visibility (fourd.gl.face_ids): positions only.
layout(location = 0) in vec3 in_position;
uniform mat4 u_view;
uniform mat4 u_proj;

void main() {
    gl_Position = u_proj * (u_view * vec4(in_position, 1.0));
}
