// Every public header compiles together (no clashing names, no missing includes), and the
// umbrella header gives the README's example.
#include <doctest/doctest.h>

#include "fathom/fathom.hpp"

TEST_CASE("the umbrella header exposes the whole library") {
  static_assert(fathom::DepthPolicy<fathom::FullDepth>);
  static_assert(fathom::DepthPolicy<fathom::LAC>);
  static_assert(fathom::DepthPolicy<fathom::StaticSkip>);
  fathom::Trace trace(2);
  CHECK(trace.usage(fathom::Phase::PP).tokens == 0);
}
