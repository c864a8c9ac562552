/* cut.c - links taken down and the paused flag (cut.h). */
#include "floodshare/cut.h"

#include <string.h>

void cut_init(struct cut *c)
{
    memset(c->down, 0, sizeof c->down);
    c->n = 0;
    atomic_init(&c->paused, 0);
    pthread_mutex_init(&c->lock, NULL);
}

void cut_destroy(struct cut *c)
{
    pthread_mutex_destroy(&c->lock);
}

static size_t find(const struct cut *c, const struct fs_addr *a)
{
    size_t i = 0;
    while (i < c->n && !addr_equal(&c->down[i], a))
        i++;
    return i;
}

fs_status cut_set_link(struct cut *c, const struct fs_addr *a, int down)
{
    fs_status st = FS_OK;

    pthread_mutex_lock(&c->lock);
    size_t i = find(c, a);
    if (down && i == c->n) {
        if (c->n == CUT_MAX)
            st = FS_ETOOBIG;
        else
            c->down[c->n++] = *a;
    } else if (!down && i < c->n) {
        c->down[i] = c->down[--c->n]; /* order does not matter */
    }
    pthread_mutex_unlock(&c->lock);
    return st;
}

void cut_set_paused(struct cut *c, int paused)
{
    atomic_store(&c->paused, paused ? 1 : 0);
}

int cut_paused(struct cut *c)
{
    return atomic_load(&c->paused);
}

const char *cut_blocks(struct cut *c, const struct fs_addr *a)
{
    if (atomic_load(&c->paused))
        return "paused";
    pthread_mutex_lock(&c->lock);
    int down = find(c, a) < c->n;
    pthread_mutex_unlock(&c->lock);
    return down ? "link_down" : NULL;
}

size_t cut_list(struct cut *c, struct fs_addr *out, size_t cap)
{
    pthread_mutex_lock(&c->lock);
    size_t n = c->n < cap ? c->n : cap;
    memcpy(out, c->down, n * sizeof *out);
    pthread_mutex_unlock(&c->lock);
    return n;
}
