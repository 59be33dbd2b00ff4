// The training objective of §3.1, the multinomial logistic regression
// (softmax cross-entropy), the GPU half of minivgg/functional/loss.py.
//
//   logits (N, K) contiguous, labels (N,) int64 in [0, K) (the loss of a row whose
//   label is not is NaN)
//   forward:  logp[n, :] = z - max(z) - log(sum(exp(z - max(z))))   (z = logits[n, :])
//             loss[n] = -logp[n, labels[n]],  probs[n, :] = exp(logp[n, :])
//   backward: dlogits[n, k] = (probs[n, k] - [k == labels[n]]) * scale,
//             scale = dloss / N (the loss is the mean over the batch; dloss is
//             a one-element array on the device)
//
// Forward runs one thread per row: N is a batch (tens to hundreds of rows)
// and each row a few thousand classes at most, so a per-row loop is cheap and
// needs no shared memory. The caller averages loss[n] over the batch.
#include "common.cuh"

template <typename T>
__device__ void softmax_xent_fwd(T* __restrict__ loss, T* __restrict__ probs,
                                 const T* __restrict__ logits, const long long* __restrict__ labels,
                                 long long N, long long K) {
    #pragma unroll 1  // one copy of the body: see common.cuh
    for (long long n = first_element(); n < N; n += grid_stride()) {
        const T* z = logits + n * K;
        T* p = probs + n * K;
        T m = z[0];
        for (long long k = 1; k < K; ++k) m = z[k] > m ? z[k] : m;
        T sum = T(0);
        for (long long k = 0; k < K; ++k) sum += exp(z[k] - m);
        const T log_sum = log(sum);
        for (long long k = 0; k < K; ++k) p[k] = exp(z[k] - m - log_sum);
        // A label outside [0, K) makes its row's loss NaN instead of reading
        // out of bounds (labels already on the GPU are not checked on the host:
        // that would stall it until the forward pass is done).
        const long long y = labels[n];
        loss[n] = (y >= 0 && y < K) ? -(z[y] - m - log_sum) : T(0) / T(0);
    }
}

extern "C" __global__ void softmax_xent_fwd_f32(float* loss, float* probs, const float* logits, const long long* labels, long long N, long long K) {
    softmax_xent_fwd(loss, probs, logits, labels, N, K);
}
extern "C" __global__ void softmax_xent_fwd_f64(double* loss, double* probs, const double* logits, const long long* labels, long long N, long long K) {
    softmax_xent_fwd(loss, probs, logits, labels, N, K);
}

// The upstream gradient dloss arrives as a one-element device array, read
// here: passing it as a scalar would make the host wait for the forward pass
// to finish just to learn its value.
template <typename T>
__device__ void softmax_xent_bwd(T* __restrict__ gx, const T* __restrict__ probs,
                                 const long long* __restrict__ labels,
                                 const T* __restrict__ dloss, long long N, long long K) {
    const T scale = dloss[0] / T(N);  // the same rounding as the CPU path's gy / N
    const long long total = N * K;
#pragma unroll 1  // one copy of the body: see common.cuh
    for (long long e = first_element(); e < total; e += grid_stride()) {
        const Split nk = split_index(e, K);
        gx[e] = (probs[e] - (nk.rest == labels[nk.outer] ? T(1) : T(0))) * scale;
    }
}

extern "C" __global__ void softmax_xent_bwd_f32(float* gx, const float* probs, const long long* labels, const float* dloss, long long N, long long K) {
    softmax_xent_bwd(gx, probs, labels, dloss, N, K);
}
extern "C" __global__ void softmax_xent_bwd_f64(double* gx, const double* probs, const long long* labels, const double* dloss, long long N, long long K) {
    softmax_xent_bwd(gx, probs, labels, dloss, N, K);
}
