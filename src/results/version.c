/* The HDF5 library version, for `ryz info`. */
#include <hdf5.h>
#include <stdio.h>

#include "ryz/info.h"

void ryz_info_hdf5(char *buf, size_t cap) {
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    snprintf(buf, cap, "%u.%u.%u", maj, min, rel);
}
