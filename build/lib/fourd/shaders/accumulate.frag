#version 330 core
// Front-to-back compositing of one peeled layer: blending (ONE_MINUS_DST_ALPHA, ONE) adds
// the layer's premultiplied colour times the transmittance left in the accumulation buffer.
uniform sampler2D u_layer_rgba;
out vec4 out_color;
void main() {
    out_color = texelFetch(u_layer_rgba, ivec2(gl_FragCoord.xy), 0);
}
