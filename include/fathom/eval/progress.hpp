#pragma once
// A one-line progress bar with rate and ETA on stderr, redrawn at most a few times per second so
// that a long eval's log stays small.
#include <chrono>
#include <cstdio>
#include <string>

namespace fathom::eval {

inline std::string format_duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  char b[32];
  const long t = long(s + 0.5);
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%lds", t);
  return b;
}

class ProgressBar {
 public:
  ProgressBar(size_t total, size_t already_done, bool enabled, std::FILE* out = stderr)
      : total_(total), base_(already_done), done_(already_done), on_(enabled), out_(out),
        start_(clock::now()), last_(start_ - std::chrono::seconds(1)) {}

  // `extra` is appended (e.g. running accuracies).
  void tick(const std::string& extra = {}, bool force = false) {
    ++done_;
    draw(extra, force || done_ == total_);
  }
  void draw(const std::string& extra, bool force) {
    if (!on_) return;
    const auto now = clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    const double el = std::chrono::duration<double>(now - start_).count();
    const size_t here = done_ - base_;
    const double rate = el > 0 ? double(here) / el : 0;
    const double eta = rate > 0 ? double(total_ - done_) / rate : -1;
    const int width = 30;
    const int fill = total_ ? int(double(width) * double(done_) / double(total_)) : width;
    std::string bar(size_t(fill), '#');
    bar.resize(size_t(width), '.');
    std::fprintf(out_, "\r[%s] %zu/%zu %5.1f%% %.1f it/s ETA %s %s\x1b[K", bar.c_str(), done_,
                 total_, total_ ? 100.0 * double(done_) / double(total_) : 100.0, rate,
                 format_duration(eta).c_str(), extra.c_str());
    std::fflush(out_);
  }
  void finish() {
    if (on_) std::fprintf(out_, "\n");
  }

 private:
  using clock = std::chrono::steady_clock;
  size_t total_, base_, done_;
  bool on_;
  std::FILE* out_;
  clock::time_point start_, last_;
};

}  // namespace fathom::eval
