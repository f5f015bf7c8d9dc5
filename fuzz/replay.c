/* fuzz/replay.c — a main() for the libFuzzer harnesses, to build one with
 * any compiler and run it over files (the committed corpora under
 * `make test`): each file is one input to LLVMFuzzerTestOneInput, whose
 * CHECKs abort on a broken property. Prints how many files it ran. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        uint8_t *data = NULL;
        size_t n = 0, cap = 0, got;

        if (!f) {
            perror(argv[i]);
            return 2;
        }
        do {
            if (n == cap && !(data = realloc(data, cap = cap ? 2 * cap : 4096))) {
                fprintf(stderr, "%s: out of memory\n", argv[i]);
                return 2;
            }
            got = fread(data + n, 1, cap - n, f);
            n += got;
        } while (got > 0);
        fclose(f);
        LLVMFuzzerTestOneInput(data, n);
        free(data);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
