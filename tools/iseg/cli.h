/* cli.h - helpers shared by the iseg subcommands (not part of the library). */
#ifndef ISEG_CLI_H
#define ISEG_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "iseg/model.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_ERR 2

/* print "iseg: <message>" on one line to stderr; returns CLI_EXIT_ERR */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* option matching: "--name value" or "--name=value". On a match *val points at the value
 * (advancing *i past it); a missing value is reported and sets *bad. */
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **val, bool *bad);
bool cli_flag(char **argv, int i, const char *name);

bool cli_parse_int(const char *s, long long lo, long long hi, long long *out);
bool cli_parse_double(const char *s, double *out);
/* comma-separated list; returns count or -1 on a syntax error; at most cap values */
int cli_parse_doubles(const char *s, double *out, int cap);
/* comma-separated int64 list, allocated with malloc */
int cli_parse_ids(const char *s, int64_t **out, size_t *n);

/* monotonic clock in seconds */
double cli_now(void);

/* progress on stderr when it is a terminal and the stage takes a while */
void cli_progress(const char *stage, size_t done, size_t total, void *user);
void cli_progress_end(void);

/* library log messages (warnings) go to stderr */
void cli_install_log(bool verbose);

/* cmd_predict.c: append detections as COCO results JSON objects ("," between them; *first
 * tracks the first), category ids from the model's metadata; 0 or CLI_EXIT_ERR */
int cli_write_detections(FILE *f, bool *first, int64_t image_id,
                         const struct iseg_detections *d, const iseg_model_t m);

int cmd_train(int argc, char **argv);             /* cmd_train.c: Mask R-CNN training */
int cmd_eval(int argc, char **argv);
int cmd_panoptic(int argc, char **argv);          /* cmd_panoptic.c: dispatch */
int cmd_panoptic_eval(int argc, char **argv);     /* cmd_panoptic_eval.c */
int cmd_panoptic_fuse(int argc, char **argv);     /* cmd_panoptic_fuse.c */
int cmd_panoptic_convert(int argc, char **argv);  /* cmd_panoptic_fuse.c */
int cmd_convert(int argc, char **argv);           /* cmd_convert.c: weights to safetensors */
int cmd_predict(int argc, char **argv);           /* cmd_predict.c: Mask R-CNN inference */
int cmd_dump(int argc, char **argv);              /* cmd_predict.c: intermediate tensors */
int cmd_synth(int argc, char **argv);             /* cmd_synth.c: synthetic nuclei data */

#endif /* ISEG_CLI_H */
