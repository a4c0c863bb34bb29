// Embedding: forward is an exact row gather; backward (scatter-add, repeated tokens) vs finite differences.
// Not testing out-of-range token ids (undefined by contract).
#include "check.h"
#include "confidant/ref_ops.h"

using namespace confidant::ref;

int main() {
    const int V = 7, C = 5, N = 6;
    const int32_t tokens[N] = {3, 1, 3, 0, 6, 3};  // token 3 three times: its gradient rows must add up
    ct::Vec wte = ct::rand_vec((size_t)V * C, 1), R = ct::rand_vec((size_t)N * C, 2), out((size_t)N * C);

    embedding_forward(out.data(), tokens, wte.data(), N, C);
    bool exact = true;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) exact &= out[(size_t)n * C + c] == wte[(size_t)tokens[n] * C + c];
    CHECK(exact);

    ct::Grad dwte((size_t)V * C, 3);
    embedding_backward(dwte.data(), R.data(), tokens, N, C);
    ct::expect_grad("embedding dwte", dwte.delta(), wte, [&] {
        embedding_forward(out.data(), tokens, wte.data(), N, C);
        return ct::dot(out, R);
    });
    return ct::finish("embedding");
}
