/* status.c - messages for fs_status, generated from FS_STATUS_MAP. */
#include "floodshare/status.h"

const char *fs_strerror(int st)
{
    switch (st) {
#define FS_STATUS_TEXT(name, value, text) case FS_##name: return text;
        FS_STATUS_MAP(FS_STATUS_TEXT)
#undef FS_STATUS_TEXT
    }
    return "unknown status";
}

const char *fs_status_name(int st)
{
    switch (st) {
#define FS_STATUS_NAME(name, value, text) case FS_##name: return #name;
        FS_STATUS_MAP(FS_STATUS_NAME)
#undef FS_STATUS_NAME
    }
    return "UNKNOWN";
}
