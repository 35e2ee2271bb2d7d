#include <stdio.h>
int main(void) {
    fputs("moda-server: not built yet\n", stderr);
    return 1;
}
