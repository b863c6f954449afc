// train_lens: trains a tuned lens for a model on a text file (tuned-lens 0.2 recipe, see
// include/fathom/lens/train.hpp), with a progress bar, checkpoints and resume; reports the
// per-layer held-out KL(p_final ‖ p_lens) of the trained lens and of the logit lens.
//
//   train_lens --text ../shared/data/tinystories/TinyStories-valid-head30KB.txt --out lens_dir
//   train_lens ... --out lens_dir --resume            (continue from lens_dir's checkpoint)
//   train_lens ... --out lens_dir --eval-lens other   (only evaluate another lens on the same data)
//
// The text is tokenized with the model's tokenizer and cut into sequences of --context tokens
// (BOS + text); the last --eval-fraction of them are held out. The sequences are written to
// <out>/data.safetensors ("train", "eval": [n, context] I32) so that another trainer
// (tools/train_reference_lens.py) can use exactly the same tokens, steps and order.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/lens/train.hpp"

using namespace fathom;
namespace fs = std::filesystem;

namespace {

struct Data {
  size_t context = 0;
  std::vector<int32_t> train, eval;  // [n, context]
  std::vector<std::span<const int32_t>> seqs(const std::vector<int32_t>& v) const {
    std::vector<std::span<const int32_t>> s;
    for (size_t i = 0; i + context <= v.size(); i += context) s.emplace_back(v.data() + i, context);
    return s;
  }
};

Data make_data(const std::vector<int32_t>& ids, int32_t bos, size_t context, double eval_fraction,
               const std::string& file) {
  Data d;
  d.context = context;
  const size_t body = context - (bos >= 0 ? 1 : 0);
  std::vector<int32_t> all;
  size_t n = 0;
  for (size_t start = 0; start + body <= ids.size(); start += body, ++n) {
    if (bos >= 0) all.push_back(bos);
    all.insert(all.end(), ids.begin() + long(start), ids.begin() + long(start + body));
  }
  const size_t n_eval = size_t(double(n) * eval_fraction + 0.5);
  if (n < 2 || n_eval == 0 || n_eval >= n)
    throw DataError(file, "", "text too short: " + std::to_string(n) + " sequences of " +
                                  std::to_string(context) + " tokens (need a train and an eval part)");
  d.train.assign(all.begin(), all.begin() + long((n - n_eval) * context));
  d.eval.assign(all.begin() + long((n - n_eval) * context), all.end());
  return d;
}

void save_data(const Data& d, const fs::path& path) {
  auto view = [&](const char* name, const std::vector<int32_t>& v) {
    return io::TensorView{name, DType::I32, {int64_t(v.size() / d.context), int64_t(d.context)},
                          reinterpret_cast<const std::byte*>(v.data()), v.size() * 4, {}};
  };
  io::save_safetensors(path, {view("train", d.train), view("eval", d.eval)});
}

void progress(int step, int steps, double loss, double secs) {
  const int width = 30, fill = steps ? int(double(width) * step / steps) : width;
  std::fprintf(stderr, "\r[%.*s%*s] %d/%d  mean KL %.4f  %.1fs", fill,
               "##############################", width - fill, "", step, steps, loss, secs);
  std::fflush(stderr);
}

void write_kl(const fs::path& path, const std::vector<std::pair<std::string, std::vector<double>>>& cols) {
  std::ofstream o(path);
  if (!o) throw IoError(path.string(), "", "cannot open for writing");
  o << "translator";
  for (auto& c : cols) o << "," << c.first;
  o << "\n";
  for (size_t i = 0; i < cols.front().second.size(); ++i) {
    o << i;
    for (auto& c : cols) o << "," << c.second[i];
    o << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Train a tuned lens (KL to the final layer, SGD-Nesterov) on a text file"};
  examples::ModelArgs margs;
  margs.add(app);
  std::string text, out = "lens_out", eval_lens;
  lens::TrainOptions o;
  int context = 128, checkpoint_every = 50;
  double eval_fraction = 0.1;
  bool resume = false;
  app.add_option("--text", text, "training text file")->required();
  app.add_option("-o,--out", out, "output folder: lens, checkpoints, data, heldout_kl.csv");
  app.add_option("--steps", o.steps, "optimizer steps")->check(CLI::PositiveNumber);
  app.add_option("--seqs-per-step", o.seqs_per_step, "sequences per step")->check(CLI::PositiveNumber);
  app.add_option("--context", context, "tokens per sequence")->check(CLI::Range(2, 1 << 16));
  app.add_option("--eval-fraction", eval_fraction, "share of sequences held out")->check(CLI::Range(0.01, 0.9));
  app.add_option("--lr-scale", o.lr_scale, "lr = lr_scale * (1 - momentum)");
  app.add_option("--weight-decay", o.weight_decay, "weight decay");
  app.add_option("--checkpoint-every", checkpoint_every, "steps between checkpoints (0: only at the end)");
  app.add_flag("--resume", resume, "continue from the checkpoint in --out");
  app.add_option("--eval-lens", eval_lens, "only evaluate this lens folder on the held-out data");
  CLI11_PARSE(app, argc, argv);
  return examples::guarded([&] {
    auto model = margs.load();
    auto tok = margs.load_tokenizer();
    const auto ids = tok.encode(io::read_text_file(text), false);
    const Data data = make_data(ids, tok.bos_id(), size_t(context), eval_fraction, text);
    const auto train = data.seqs(data.train), held = data.seqs(data.eval);
    fs::create_directories(out);
    save_data(data, fs::path(out) / "data.safetensors");
    std::cerr << ids.size() << " tokens: " << train.size() << " training and " << held.size()
              << " held-out sequences of " << context << "\n";
    const size_t L = model->n_layers(), H = model->hidden();

    if (!eval_lens.empty()) {
      auto lens = lens::TunedLens::load(eval_lens);
      lens::LensTrainer t(*model, lens, o);
      const auto kl = t.evaluate(held);
      write_kl(fs::path(out) / "heldout_kl_eval.csv", {{"kl", kl}});
      for (size_t i = 0; i < L; ++i) std::cout << "translator " << i << ": held-out KL " << kl[i] << "\n";
      return 0;
    }

    lens::TunedLens lens(L, H);
    lens::LensTrainer t(*model, lens, o);
    if (resume) {
      t.resume(out);
      std::cerr << "resumed at step " << t.step() << "\n";
    }
    const auto t0 = std::chrono::steady_clock::now();
    while (t.step() < o.steps) {
      std::vector<std::span<const int32_t>> batch;
      for (size_t j = 0; j < o.seqs_per_step; ++j)
        batch.push_back(train[(size_t(t.step()) * o.seqs_per_step + j) % train.size()]);
      const auto loss = t.train_step(batch);
      double mean = 0;
      for (double l : loss) mean += l / double(L);
      progress(t.step(), o.steps, mean, examples::seconds_since(t0));
      if (checkpoint_every > 0 && t.step() % checkpoint_every == 0) t.save(out, margs.model);
    }
    std::cerr << "\n";
    t.save(out, margs.model);
    lens::TunedLens zero(L, H);
    lens::LensTrainer tz(*model, zero, o);
    const auto kl = t.evaluate(held), kl0 = tz.evaluate(held);
    write_kl(fs::path(out) / "heldout_kl.csv", {{"tuned_lens", kl}, {"logit_lens", kl0}});
    for (size_t i = 0; i < L; ++i)
      std::cout << "translator " << i << ": held-out KL " << kl[i] << " (logit lens " << kl0[i]
                << ")\n";
    std::cout << "saved " << out << " (config.json + params.safetensors)\n";
    return 0;
  });
}
