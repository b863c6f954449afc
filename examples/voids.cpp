// voids — the LAC void analysis ("Void in Language Models"): run prompt processing (PP) and
// response generation (RG) under L2 Adaptive Computation, print which layers each phase used,
// and write the per-token trace (JSONL, CSV), the usage summary and a tokens × layers heatmap.
// With --calibrate, turn the voids into real speed: derive a per-phase static skip set from the
// trace and time decoding without those layers against full depth.
//
//   voids                                         # stories260K, "Once upon a time", α = 0.8
//   voids -m qwen2.5-7b-instruct/ --chat --prompts prompts.txt --alpha 0.8 --out out/qwen
#include "common.hpp"

#include <fstream>

#include "fathom/depth/lac.hpp"
#include "fathom/depth/static_skip.hpp"
#include "fathom/model/generate.hpp"
#include "fathom/report/heatmap.hpp"
#include "fathom/report/trace_io.hpp"
#include "fathom/report/usage_table.hpp"

namespace {

std::vector<std::string> read_prompts(const std::string& file) {
  std::ifstream f(file, std::ios::binary);
  if (!f) throw fathom::IoError(file, "", "cannot open the prompts file");
  std::vector<std::string> out;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) out.push_back(line);
  }
  if (out.empty()) throw fathom::DataError(file, "", "no prompts (one prompt per non-empty line)");
  return out;
}

std::string set_string(const std::vector<uint8_t>& skipped) {
  std::string s;
  for (size_t l = 0; l < skipped.size(); ++l)
    if (skipped[l]) s += (s.empty() ? "" : ",") + std::to_string(l);
  return s.empty() ? "none" : s;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"fathom voids: which layers does each token use? (LAC, Void in Language Models)"};
  examples::ModelArgs margs;
  margs.add(app);
  std::string prompt = "Once upon a time", prompts_file, out_dir = "voids-out", mode = "final-state",
              kv = "propagate";
  double alpha = 0.8, calibrate = -1;
  bool chat = false;
  size_t heatmap_tokens = 96;
  fathom::GenerateOptions gen;
  gen.max_new_tokens = 48;
  app.add_option("-p,--prompt", prompt, "prompt text");
  app.add_option("--prompts", prompts_file, "file with one prompt per line (instead of --prompt)");
  app.add_flag("--chat", chat, "wrap each prompt in the model's chat format (generation prompt)");
  app.add_option("-a,--alpha", alpha, "LAC α: a layer is a void when Δ_l < α·range(Δ_{<l})");
  app.add_option("--mode", mode, "what a void means: final-state (the authors' code), in-stream, trace-only")
      ->check(CLI::IsMember({"final-state", "in-stream", "trace-only"}));
  app.add_option("--kv", kv, "K/V of positions that skipped a layer: propagate, exact, none")
      ->check(CLI::IsMember({"propagate", "exact", "none"}));
  app.add_option("-n,--max-new-tokens", gen.max_new_tokens, "tokens to generate per prompt");
  app.add_option("--temperature", gen.sampling.temperature, "0: greedy (default)");
  app.add_option("--top-p", gen.sampling.top_p, "nucleus sampling mass");
  app.add_option("--seed", gen.sampling.seed, "sampling seed");
  app.add_option("-o,--out", out_dir, "folder for trace.jsonl, trace.csv, usage.csv, heatmap.svg");
  app.add_option("--heatmap-tokens", heatmap_tokens, "tokens per phase drawn in the heatmap");
  app.add_option("--calibrate", calibrate,
                 "skip layers activated for fewer than this fraction of tokens (per phase) and time "
                 "decoding against full depth");
  CLI11_PARSE(app, argc, argv);

  return examples::guarded([&] {
    auto model = margs.load();
    auto tok = margs.load_tokenizer();
    const auto prompts = prompts_file.empty() ? std::vector<std::string>{prompt} : read_prompts(prompts_file);
    const fathom::LacMode lac_mode = mode == "in-stream"    ? fathom::LacMode::InStream
                                     : mode == "trace-only" ? fathom::LacMode::TraceOnly
                                                            : fathom::LacMode::FinalState;
    const fathom::KvStrategy kv_strategy = kv == "exact" ? fathom::KvStrategy::Exact
                                           : kv == "none" ? fathom::KvStrategy::None
                                                          : fathom::KvStrategy::Propagate;
    std::filesystem::create_directories(out_dir);
    const std::filesystem::path out(out_dir);
    auto token_text = [&](int32_t id) { return tok.decode({id}, false); };

    fathom::Trace trace(model->n_layers());
    fathom::LAC lac(model->n_layers(), model->hidden(), alpha, lac_mode, &trace);
    fathom::report::TraceJsonlWriter jsonl(out / "trace.jsonl", token_text);
    std::vector<std::vector<int32_t>> encoded;
    std::ofstream texts(out / "generations.txt", std::ios::binary);
    std::cout << "model " << margs.model << " (" << model->n_layers() << " layers), α = " << alpha
              << ", " << mode << ", kv " << kv << "\n";
    if (chat) std::cout << "chat template: " << tok.chat_template_source() << "\n";
    std::cout << "\n";
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const std::string text = chat ? tok.apply_chat_template({{"user", prompts[i]}}, true) : prompts[i];
      auto ids = tok.encode(text, !chat);
      if (ids.empty()) throw fathom::UsageError("", "prompt", "prompt " + std::to_string(i) + " is empty");
      encoded.push_back(ids);
      fathom::Session session(*model, {0, kv_strategy});
      trace.set_sequence(int64_t(i));
      auto g = fathom::generate(session, ids, gen, lac);
      jsonl.sync(trace);  // every record on disk as soon as its prompt is done
      const std::string answer = tok.decode(g.tokens, true);
      std::cout << "[" << i << "] " << prompts[i] << " ▸ " << answer << "\n";
      texts << prompts[i] << "\t" << answer << "\n" << std::flush;
    }
    const double secs = examples::seconds_since(t0);

    std::cout << "\n" << fathom::report::usage_text(trace) << "\n";
    const auto pp = trace.usage(fathom::Phase::PP), rg = trace.usage(fathom::Phase::RG);
    std::printf("%% of layers used: PP %.1f%%, RG %.1f%% (%zu + %zu tokens, %.2f s)\n",
                100 * pp.mean_activated(), 100 * rg.mean_activated(), pp.tokens, rg.tokens, secs);

    fathom::report::write_trace_csv(out / "trace.csv", trace, token_text);
    std::ofstream(out / "usage.csv", std::ios::binary) << fathom::report::usage_csv(trace);
    fathom::report::HeatmapOptions hopt;
    hopt.model = std::filesystem::path(margs.model).filename().string();
    hopt.alpha = alpha;
    hopt.note = "LAC " + mode + ", KV " + kv;
    hopt.max_tokens = heatmap_tokens;
    fathom::report::write_heatmap_svg(out / "heatmap.svg", trace, hopt, token_text);
    std::cout << "wrote " << (out / "trace.jsonl").string() << ", trace.csv, usage.csv, heatmap.svg, "
              << "generations.txt\n";

    if (calibrate >= 0) {
      // Calibrated skip: the layers LAC found to be voids for most tokens are not computed at all.
      auto skip = fathom::calibrated_skip(trace, calibrate);
      std::cout << "\ncalibrated skip (activated < " << calibrate << "): PP skips {"
                << set_string(skip.skipped(fathom::Phase::PP)) << "}, RG skips {"
                << set_string(skip.skipped(fathom::Phase::RG)) << "}\n";
      auto time_decode = [&](auto& policy) {
        size_t n = 0;
        double t = 0;
        for (const auto& ids : encoded) {
          fathom::Session s(*model, {0, kv_strategy});
          fathom::GenerateOptions o = gen;
          o.stop_on_eos = false;
          o.max_new_tokens = std::min<int>(gen.max_new_tokens, int(s.capacity() - int64_t(ids.size())));
          s.forward(ids, fathom::Phase::PP, policy);
          const auto t1 = std::chrono::steady_clock::now();
          int32_t next = 1;
          for (int k = 0; k < o.max_new_tokens; ++k, ++n)
            s.forward(std::span<const int32_t>(&next, 1), fathom::Phase::RG, policy);
          t += examples::seconds_since(t1);
        }
        return double(n) / t;
      };
      fathom::FullDepth full;
      const double full_tps = time_decode(full), skip_tps = time_decode(skip);
      std::printf("decode: full depth %.0f tok/s, calibrated skip %.0f tok/s (%.2fx)\n", full_tps,
                  skip_tps, skip_tps / full_tps);
    }
    return 0;
  });
}
