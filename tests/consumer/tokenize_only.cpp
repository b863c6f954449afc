// Uses fathom::tokenizer alone (no OpenMP, no xsimd): prints the ids of argv[2] under the
// tokenizer of argv[1] (a model folder with tokenizer.json, or a llama2.c .bin), space-separated,
// then the decoded text on the next line.
#include <exception>
#include <iostream>

#include <fathom/tokenizer/any_tokenizer.hpp>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: tokenize_only <model folder or .bin> <text>\n";
    return 2;
  }
  try {
    const auto tok = fathom::tok::load_tokenizer_for(argv[1]);
    const auto ids = tok.encode(argv[2], /*add_special=*/false);
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n" << tok.decode(ids) << "\n";
  } catch (const std::exception& e) {
    std::cerr << "tokenize_only: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
