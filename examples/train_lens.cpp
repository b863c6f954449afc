// train_lens: trains a tuned lens for a model on a text file (tuned-lens 0.2 recipe, see
// include/fathom/lens/train.hpp), with a progress bar, checkpoints and resume; reports the
// per-layer held-out KL(p_final ‖ p_lens) of the trained lens and of the logit lens.
//
//   train_lens --text ../shared/data/tinystories/TinyStories-valid-head30KB.txt --out lens_dir
//   train_lens ... --out lens_dir --resume            (continue from lens_dir's checkpoint)
//   train_lens ... --out lens_dir --eval-lens other   (only evaluate another lens on the same data)
//
// Data (lens/train_data.hpp): every non-empty line of the text is a document, tokenized and
// followed by EOS; the stream is cut into sequences of --seq-len tokens (BOS first when the
// tokenizer has one), the last --eval-fraction of them held out, the training sequences shuffled
// with --seed. Step k uses training sequences k·S .. k·S+S−1 (mod n), S = --tokens-per-step /
// --seq-len. The sequences are written to <out>/data.safetensors ("train" in the order used,
// "eval": [n, seq_len] I32) so that another trainer (tools/train_reference_lens.py) uses exactly
// the same tokens, steps and order. Training throughput (tokens/s, held-out evaluation excluded)
// is printed at the end.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common.hpp"
#include "fathom/depth/metrics.hpp"
#include "fathom/io/safetensors.hpp"
#include "fathom/lens/train.hpp"
#include "fathom/lens/train_data.hpp"

using namespace fathom;
namespace fs = std::filesystem;

namespace {

void save_data(const lens::TrainData& d, const fs::path& path) {
  auto view = [&](const char* name, const lens::SequenceSet& v) {
    return io::TensorView{name, DType::I32, {int64_t(v.size()), int64_t(v.seq_len)},
                          reinterpret_cast<const std::byte*>(v.ids.data()), v.ids.size() * 4, {}};
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
  std::string text, out = "lens_out", eval_lens, freq_counts;
  size_t eval_seqs = 0;
  lens::TrainOptions o;
  int seq_len = 128, checkpoint_every = 50;
  size_t tokens_per_step = 0;
  uint64_t seed = 42;
  double eval_fraction = 0.1;
  bool resume = false;
  app.add_option("--text", text, "training text file (one document per non-empty line)")->required();
  app.add_option("-o,--out", out, "output folder: lens, checkpoints, data, heldout_kl.csv");
  app.add_option("--steps", o.steps, "optimizer steps")->check(CLI::PositiveNumber);
  app.add_option("--seqs-per-step", o.seqs_per_step, "sequences per step")->check(CLI::PositiveNumber);
  app.add_option("--tokens-per-step", tokens_per_step,
                 "tokens per step (a multiple of --seq-len; overrides --seqs-per-step)");
  app.add_option("--seq-len,--context", seq_len, "tokens per sequence")->check(CLI::Range(2, 1 << 16));
  app.add_option("--seed", seed, "shuffle seed of the training sequences");
  app.add_option("--block-rows", o.rows_per_block, "tokens per product (bounds memory)")->check(CLI::PositiveNumber);
  app.add_option("--eval-fraction", eval_fraction, "share of sequences held out")->check(CLI::Range(0.01, 0.9));
  app.add_option("--lr-scale", o.lr_scale, "lr = lr_scale * (1 - momentum)");
  app.add_option("--weight-decay", o.weight_decay, "weight decay");
  app.add_option("--checkpoint-every", checkpoint_every, "steps between checkpoints (0: only at the end)");
  app.add_flag("--resume", resume, "continue from the checkpoint in --out");
  app.add_option("--eval-lens", eval_lens, "only evaluate this lens folder (and the logit lens) on the held-out data");
  app.add_option("--eval-seqs", eval_seqs, "held-out sequences evaluated (0: all)");
  app.add_option("--freq-weight", o.freq_beta,
                 "frequency-down-weighted loss: weight (count+1)^-BETA of the token's final top-1 (0: off)")
      ->check(CLI::Range(0.0, 4.0));
  app.add_flag("--bf16-products", o.bf16_products,
               "unembedding products in bf16 (AVX512_BF16; inexact, ~2x faster; the reference's GPU autocast)");
  app.add_option("--freq-counts", freq_counts, "token counts for --freq-weight (examples/depth --freq-counts writes them)");
  CLI11_PARSE(app, argc, argv);
  return examples::guarded([&] {
    auto model = margs.load();
    auto tok = margs.load_tokenizer();
    if (tokens_per_step) {
      if (tokens_per_step % size_t(seq_len))
        throw UsageError("", "--tokens-per-step", "must be a multiple of --seq-len");
      o.seqs_per_step = tokens_per_step / size_t(seq_len);
    }
    lens::DataOptions dopt;
    dopt.seq_len = size_t(seq_len);
    dopt.bos = tok.bos_id();
    const auto eos = tok.eos_ids();
    dopt.eos = eos.empty() ? -1 : eos.front();
    dopt.eval_fraction = eval_fraction;
    dopt.seed = seed;
    const lens::TrainData data = lens::load_train_data(tok, text, dopt);
    auto train = data.train.spans(), held = data.eval.spans();
    if (eval_seqs > 0 && eval_seqs < held.size()) held.resize(eval_seqs);
    if (o.freq_beta > 0) {
      if (freq_counts.empty()) throw UsageError("", "--freq-counts", "--freq-weight needs token counts");
      const auto freq = depth::TokenFrequency::load(freq_counts, model->vocab());
      std::vector<int64_t> counts(model->vocab());
      for (size_t v = 0; v < counts.size(); ++v) counts[v] = freq.count(int32_t(v));
      o.target_weight = lens::frequency_weights(counts, o.freq_beta);
    }
    fs::create_directories(out);
    save_data(data, fs::path(out) / "data.safetensors");
    std::cerr << data.documents << " documents, " << data.stream_tokens << " tokens: "
              << train.size() << " training and " << held.size() << " held-out sequences of "
              << seq_len << ", " << o.seqs_per_step * size_t(seq_len) << " tokens per step\n";
    const size_t L = model->n_layers(), H = model->hidden();

    if (!eval_lens.empty()) {
      auto lens = lens::TunedLens::load(eval_lens);
      lens::LensTrainer t(*model, lens, o);
      lens::TunedLens zero(L, H);
      lens::LensTrainer tz(*model, zero, o);
      const auto kl = t.evaluate(held), kl0 = tz.evaluate(held);
      write_kl(fs::path(out) / "heldout_kl_eval.csv", {{"kl", kl}, {"logit_lens", kl0}});
      for (size_t i = 0; i < L; ++i)
        std::cout << "translator " << i << ": held-out KL " << kl[i] << " (logit lens " << kl0[i] << ")\n";
      return 0;
    }

    lens::TunedLens lens(L, H);
    lens::LensTrainer t(*model, lens, o);
    if (resume) {
      t.resume(out);
      std::cerr << "resumed at step " << t.step() << "\n";
    }
    const int start_step = t.step();
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
    const double secs = examples::seconds_since(t0);
    const int ran = o.steps - start_step;
    std::cerr << "\n";
    if (ran > 0)
      std::cout << "training: " << ran << " steps, " << double(ran) * double(o.seqs_per_step * size_t(seq_len)) / secs
                << " tokens/s (" << secs << " s)\n";
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
