// One SGD step with momentum and L2 weight decay (§3.1: momentum 0.9, weight
// decay 5e-4), over ALL parameters at once: the optimizer keeps parameters,
// gradients and momentum buffers in three flat buffers, so one launch updates
// the whole network. The GPU half of minivgg/optim/sgd.py, in the same order
// of operations as its NumPy reference:
//
//   v = momentum * v + grad_scale * g
//   v = v + weight_decay * p
//   p = p - lr * v
//
// v starts at zero, which makes the first step v = g + wd * p, as in PyTorch.
// grad_scale turns the gradient the trainer accumulated (of a SUM of losses,
// averaged over ranks) into the gradient of the mean loss, in the same pass.
// With momentum 0, v is simply the decayed gradient of this step (the old v
// is not read, so a non-finite value left in it cannot leak into the update).
#include "common.cuh"

template <typename T>
__device__ void sgd_step(T* __restrict__ p, T* __restrict__ v, const T* __restrict__ g,
                         long long n, T lr, T momentum, T weight_decay, T grad_scale) {
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < n; e += grid_stride()) {
        const T ge = grad_scale != T(1) ? grad_scale * g[e] : g[e];
        T ve = momentum != T(0) ? momentum * v[e] + ge : ge;
        ve = ve + weight_decay * p[e];
        v[e] = ve;
        p[e] = p[e] - lr * ve;
    }
}

extern "C" __global__ void sgd_step_f32(float* p, float* v, const float* g, long long n, float lr, float momentum, float weight_decay, float grad_scale) {
    sgd_step(p, v, g, n, lr, momentum, weight_decay, grad_scale);
}
extern "C" __global__ void sgd_step_f64(double* p, double* v, const double* g, long long n, double lr, double momentum, double weight_decay, double grad_scale) {
    sgd_step(p, v, g, n, lr, momentum, weight_decay, grad_scale);
}
