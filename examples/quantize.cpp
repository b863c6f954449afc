// quantize — what the Q8 weight format costs a model, and a Q8 checkpoint to keep.
//
// Loads the model twice (weights as stored, and quantised to Q8 at load), then reports: bytes of
// matrices read per decoded token, the weights' relative quantisation error, the logits of every
// position of the text's first window (max |Δ| relative to the largest logit, top-1 agreement,
// mean KL(p_stored ‖ p_q8)), and the perplexity of the whole text under both. -o writes the Q8
// model as a Hugging Face folder (int8 values + f16 `_scale` tensors, model/q8_checkpoint.hpp)
// that loads without quantising again.
//
//   quantize                                  # stories260K on the TinyStories text
//   quantize -m qwen2.5-0.5b/ --text wiki.txt -o qwen2.5-0.5b-q8/
//   quantize -m tests/fixtures/models/llama_f32 --random-ids 64   # no tokenizer: random ids
#include "common.hpp"

#include <random>

#include "fathom/core/text_file.hpp"
#include "fathom/eval/model_diff.hpp"
#include "fathom/eval/perplexity.hpp"
#include "fathom/model/full_depth.hpp"
#include "fathom/model/save.hpp"
#include "fathom/model/session.hpp"

int main(int argc, char** argv) {
  CLI::App app{"fathom quantize: the cost of Q8 weights (logits, perplexity) and a Q8 checkpoint"};
  examples::ModelArgs margs;
  margs.add(app);
  std::string text = (fathom::shared_dir() / "data/tinystories/TinyStories-valid-head30KB.txt").string();
  std::string out;
  size_t window = 256, random_ids = 0;
  app.add_option("--text", text, "text for the logits and perplexity (default: the shared TinyStories head)");
  app.add_option("--window", window, "tokens per perplexity window (and logits comparison)");
  app.add_option("--random-ids", random_ids, "use N seeded random token ids instead of a text (models without a tokenizer)");
  app.add_option("-o,--out", out, "write the Q8 model to this folder (config.json + model.safetensors)");
  CLI11_PARSE(app, argc, argv);

  return examples::guarded([&] {
    using namespace fathom;
    if (margs.threads > 0) omp_set_num_threads(margs.threads);
    // A GGUF file held as stored is already Q8: compare with its exact (dequantised) f32 weights.
    const bool gguf = std::filesystem::path(margs.model).extension() == ".gguf";
    if (gguf && margs.weights == "as-stored") margs.weights = "f32";
    auto ref = load_model(margs.model, margs.load_options());
    auto q8 = load_model(margs.model, {WeightFormat::Q8});

    std::vector<int32_t> ids;
    if (random_ids > 0) {
      std::mt19937 rng(1);
      for (size_t i = 0; i < random_ids; ++i) ids.push_back(int32_t(rng() % ref->vocab()));
    } else {
      std::string s;
      try {
        s = read_text_file(text);
      } catch (const IoError& e) {
        throw IoError(e.file(), e.field(), e.reason() + " (give --text, or --random-ids N)");
      }
      ids = margs.load_tokenizer().encode(s, true);
    }
    if (ids.size() < 2) throw UsageError("", "--text", "fewer than two tokens");
    window = std::min({window, ids.size(), size_t(ref->config().max_position_embeddings)});

    // 1. Weights.
    const auto wd = eval::weight_diff(*ref, *q8);
    std::printf("model       %s (%zu layers, hidden %zu, vocab %zu), weights as %s\n", margs.model.c_str(),
                ref->n_layers(), ref->hidden(), ref->vocab(), margs.weights.c_str());
    std::printf("matrices    %.2f MB -> %.2f MB in Q8 (%.3fx)\n", wd.bytes_a / 1e6, wd.bytes_b / 1e6,
                double(wd.bytes_b) / double(wd.bytes_a));
    std::printf("weights     relative RMS error per matrix: mean %.4f, max %.4f\n", wd.mean_error,
                wd.max_error);

    // 2. Logits of every position of the first window.
    const std::vector<int32_t> first(ids.begin(), ids.begin() + std::ptrdiff_t(window));
    Session sr(*ref, {int64_t(window)}), sq(*q8, {int64_t(window)});
    const auto ld = eval::logit_diff(sr.forward(first, Phase::PP, Logits::All),
                                     sq.forward(first, Phase::PP, Logits::All), ref->vocab());
    std::printf("logits      %zu positions: max |dlogit| %.4g (%.3g of max |logit| %.3g), top-1 agreement %.1f %%, "
                "mean KL %.3g nats\n",
                window, ld.max_dev, ld.max_dev / std::max(1.0, ld.max_abs), ld.max_abs,
                100.0 * ld.top1_agreement(), ld.mean_kl());

    // 3. Perplexity of the whole text.
    FullDepth full;
    const auto pr = eval::perplexity(sr, ids, window, window / 2, full);
    const auto pq = eval::perplexity(sq, ids, window, window / 2, full);
    std::printf("perplexity  %zu tokens (window %zu, stride %zu): %.4f -> %.4f Q8 (%+.2f %%)\n", ids.size(), window,
                window / 2, pr.ppl(), pq.ppl(), 100.0 * (pq.ppl() / pr.ppl() - 1));

    if (!out.empty()) {
      save_model(*q8, out);
      // the tokenizer files of a Hugging Face folder go along (a llama2.c model's tok512.bin is
      // given with --tokenizer)
      namespace fs = std::filesystem;
      const fs::path src = fs::is_directory(margs.model) ? fs::path(margs.model) : fs::path(margs.model).parent_path();
      for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                            "special_tokens_map.json"})
        if (fs::exists(src / f) && fs::is_directory(margs.model))
          fs::copy_file(src / f, fs::path(out) / f, fs::copy_options::overwrite_existing);
      std::printf("saved       %s (loads as Q8 without quantising again)\n", out.c_str());
      if (gguf)  // the tokenizer lives in the GGUF's metadata; load_tokenizer reads it from there
        std::printf("tokenizer   not copied: load it with --tokenizer %s\n", margs.model.c_str());
    }
    return 0;
  });
}
