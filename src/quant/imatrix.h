// Importance matrix: for every matmul weight, the mean of x_j^2 over all calibration tokens for
// each input column j (x = the matmul's input activations). A weight column that multiplies
// large inputs matters more, so quantizers weight their rounding error by it
// (quantize_row_weighted in codec.h).
//
// Saved as a GGUF file (docs/QUANTIZATION.md, "imatrix file"): general.type = "imatrix"; one F32
// tensor per weight, named as the weight's GGUF name, ne = [cols], holding the means; the
// token count behind each mean in the u64 array unicorn.imatrix.counts (tensor order);
// unicorn.imatrix.dataset = calibration text name, unicorn.imatrix.chunks = chunks evaluated.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace unicorn {

class ImportanceMatrix {
 public:
  // Adds `rows` input rows of `cols` values (row-major) seen by weight `name`. Throws Error if
  // the same name arrives with another column count.
  void accumulate(const std::string& name, const float* x, int64_t rows, int64_t cols);

  // Mean of x^2 per column; null if `name` was never seen.
  const std::vector<float>* find(std::string_view name) const;
  int64_t count(std::string_view name) const;  // rows behind the means (0 if unseen)
  size_t size() const { return entries_.size(); }
  std::vector<std::string> names() const;

  std::string dataset;  // what it was computed from (recorded in the file)
  int64_t chunks = 0;

  // Throws Error naming the path on a write failure (no partial file is left: GgufWriter).
  void save(const std::string& path) const;
  // Throws Error naming the path if it is not an imatrix file written by save().
  static ImportanceMatrix load(const std::string& path);

 private:
  struct Entry {
    std::vector<double> sum;  // sum of x^2 per column
    int64_t rows = 0;
    mutable std::vector<float> mean;  // cache filled by find()
  };
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace unicorn
