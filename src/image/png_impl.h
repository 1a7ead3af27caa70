/* png_impl.h - internals of png.c shared with its tests, fuzz target and benchmark; never
 * installed. */
#ifndef ISEG_PNG_IMPL_H
#define ISEG_PNG_IMPL_H

#include <stdbool.h>

/* When true, the PNG reader skips its own fast decoder (libdeflate + our unfiltering) and
 * always decodes through libspng. For differential tests and benchmarks only: set it before
 * any decoding starts, never while other threads decode. */
extern bool iseg__png_force_slow;

/* Images the fast decoder has produced on this thread, so tests can tell which path ran. */
extern _Thread_local unsigned long iseg__png_n_fast;

#endif /* ISEG_PNG_IMPL_H */
