#include "formats/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace unicorn {

std::unique_ptr<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open: {}", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    fail("{}: cannot stat: {}", path, std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("{}: is a directory, expected a file", path);
  }
  std::unique_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      fail("{}: cannot mmap: {}", path, std::strerror(e));
    }
    m->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return m;
}

std::unique_ptr<MappedFile> MappedFile::from_bytes(std::string name, std::vector<uint8_t> bytes) {
  std::unique_ptr<MappedFile> m(new MappedFile());
  m->path_ = std::move(name);
  m->size_ = bytes.size();
  if (!bytes.empty()) {
    m->owned_.reset(new uint8_t[bytes.size()]);
    std::memcpy(m->owned_.get(), bytes.data(), bytes.size());
    m->data_ = m->owned_.get();
  }
  return m;
}

MappedFile::~MappedFile() {
  if (data_ && !owned_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace unicorn
