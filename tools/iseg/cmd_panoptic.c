/* cmd_panoptic.c - iseg panoptic <subcommand>: dispatch only. */
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli.h"

static const char PANOPTIC_USAGE[] =
    "usage: iseg panoptic <command> [options]\n"
    "\n"
    "  eval      Panoptic Quality (PQ = SQ x RQ) and Boundary PQ, as panopticapi computes them\n"
    "  fuse      merge instance predictions with a semantic segmentation into panoptic output\n"
    "  convert   panoptic <-> 2-channel PNGs, panoptic -> COCO instances JSON\n"
    "\n"
    "'iseg panoptic <command> --help' lists a command's options.\n";

int cmd_panoptic(int argc, char **argv) {
#ifdef __GLIBC__
    /* Panoptic work decodes two PNGs of about a megabyte per image: keep such buffers in the
     * heap for reuse instead of an mmap/munmap (page faults, TLB shootdowns) per image. Memory
     * stays small here (a few images in flight); COCO evaluation keeps the defaults. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 128 << 20);
#endif
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(PANOPTIC_USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_ERR : 0;
    }
    if (strcmp(argv[1], "eval") == 0) return cmd_panoptic_eval(argc - 1, argv + 1);
    if (strcmp(argv[1], "fuse") == 0) return cmd_panoptic_fuse(argc - 1, argv + 1);
    if (strcmp(argv[1], "convert") == 0) return cmd_panoptic_convert(argc - 1, argv + 1);
    fputs(PANOPTIC_USAGE, stderr);
    return cli_error("panoptic: unknown command '%s'", argv[1]);
}
