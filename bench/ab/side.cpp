// One side of ab.sh: compiled with -DSIDE_NS=<namespace> (and -DSIDE_OLD for the old headers).
#define fathom SIDE_NS
#include "fathom/kernels/linear.hpp"
#include "kernel_bench.hpp"
#undef fathom
#include "side.hpp"

namespace side {
struct Set {
  SIDE_NS::kbench::ColdMatrices m;
};
namespace {
Set* make(int dt, size_t rows, size_t cols, bool hot) {
  return new Set{SIDE_NS::kbench::ColdMatrices(static_cast<SIDE_NS::DType>(dt), rows, cols,
                                               hot ? 0 : size_t(256) << 20, hot ? 1 : 2)};
}
size_t count(Set* s) { return s->m.copies.size(); }
double bytes(Set* s) { return double(s->m.copies[0]->bytes); }
void gemv(Set* s, size_t i, const float* x, float* y) { SIDE_NS::kernels::gemv(s->m.copies[i]->view, x, y); }
void gemm(Set* s, size_t i, const float* X, size_t n, float* Y) {
  SIDE_NS::kernels::gemm(s->m.copies[i]->view, X, n, Y);
}
}  // namespace
#ifdef SIDE_OLD
Api old_api() { return {make, count, bytes, gemv, gemm}; }
#else
Api new_api() { return {make, count, bytes, gemv, gemm}; }
#endif
}  // namespace side
