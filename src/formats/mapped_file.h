// Read-only memory mapping of a whole file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace unicorn {

class MappedFile {
 public:
  // Throws Error("<path>: <reason>") if the file cannot be opened or mapped.
  static std::unique_ptr<MappedFile> open(const std::string& path);
  // Bytes already in memory, presented as if mapped from `name` (used in messages). The copy is
  // an exact-size heap allocation, so sanitizers flag any read past its end — which a real
  // mapping hides until the next page boundary.
  static std::unique_ptr<MappedFile> from_bytes(std::string name, std::vector<uint8_t> bytes);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::unique_ptr<uint8_t[]> owned_;  // set by from_bytes(); data_ points into it
};

}  // namespace unicorn
