// Structured errors at the library boundary (see docs/ARCHITECTURE.md).
// User-facing failures (bad file, bad flag, bad request) throw unicorn::Error with a message
// naming what and where; front ends catch it and print one line. Asserts are for invariants.
#pragma once
#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace unicorn {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] inline void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace unicorn
