#include <cstdio>

int main() {
  std::puts("unicorn: under construction");
  return 0;
}
