#version 330 core
// Writes the triangle index + 1 (0 = empty) as a float: exact up to 2^24 triangles.
layout(location = 0) out float out_face;

void main() {
    out_face = float(gl_PrimitiveID + 1);
}
