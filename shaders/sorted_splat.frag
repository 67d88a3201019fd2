#version 330 core
// One sorted pass of the baked renderer: points arrive nearest first (sorted by camera depth, then
// index — the peel's order), every fragment that covers its pixel centre (peel.frag's test) is
// counted in the stencil buffer, the first K of a pixel pass the stencil test and are blended front
// to back (ONE_MINUS_DST_ALPHA, ONE) as premultiplied colour: the K nearest, composited, in one pass.
flat in vec2 v_center;
flat in float v_r2;
flat in vec3 v_color;
flat in float v_density;

uniform float u_height;

out vec4 out_rgba;

void main() {
    vec2 pixel = vec2(gl_FragCoord.x, u_height - gl_FragCoord.y);
    vec2 d = pixel - v_center;
    float d2 = dot(d, d);
    if (d2 >= v_r2) discard;
    float alpha = clamp(v_density * (1.0 - d2 / v_r2), 0.0, 1.0);
    out_rgba = vec4(v_color * alpha, alpha);
}
