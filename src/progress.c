/* progress.c - format a progress line like curl's or wget's. */
#include "floodshare/progress.h"

#include <stdio.h>
#include <string.h>

char *progress_bytes(char *out, size_t cap, uint64_t n)
{
    static const char *units[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    double v = (double)n;
    int u = 0;

    while (v >= 1000.0 && u < 5) {
        v /= 1000.0;
        u++;
    }
    if (u == 0)
        snprintf(out, cap, "%llu B", (unsigned long long)n);
    else
        snprintf(out, cap, "%.1f %s", v, units[u]);
    return out;
}

static void eta_text(char *out, size_t cap, const struct ctl_progress *pr)
{
    if (pr->done >= pr->total) {
        snprintf(out, cap, "done");
        return;
    }
    if (pr->rate == 0) {
        snprintf(out, cap, "ETA --");
        return;
    }
    uint64_t s = (pr->total - pr->done) / pr->rate;
    if (s >= 3600)
        snprintf(out, cap, "ETA %lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else if (s >= 60)
        snprintf(out, cap, "ETA %llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else
        snprintf(out, cap, "ETA %llus", (unsigned long long)s);
}

char *progress_format(char *out, size_t cap, const struct ctl_progress *pr, int width, int color)
{
    char done[16], total[16], rate[16], eta[64], tail[200], bar[64];
    unsigned pct = pr->total ? (unsigned)(100.0 * (double)pr->done / (double)pr->total) : 100;

    if (pct > 100)
        pct = 100;
    progress_bytes(done, sizeof done, pr->done);
    progress_bytes(total, sizeof total, pr->total);
    progress_bytes(rate, sizeof rate, pr->rate);
    eta_text(eta, sizeof eta, pr);
    int tl = pr->sources > 1
                 ? snprintf(tail, sizeof tail, " %3u%% %s / %s  %s/s  %s  from %u sources", pct,
                            done, total, rate, eta, pr->sources)
                 : snprintf(tail, sizeof tail, " %3u%% %s / %s  %s/s  %s  from peer %u %s", pct,
                            done, total, rate, eta, pr->peer, pr->holder);
    /* The name and the bar share what the numbers leave of the width. */
    int room = width - tl;
    int bw = room >= 40 ? 20 : room >= 24 ? 10 : 0;
    int nw = room - (bw ? bw + 3 : 0);
    if (nw < 4)
        nw = 4;
    int filled = bw * (int)pct / 100;
    memset(bar, '#', (size_t)filled);
    memset(bar + filled, '.', (size_t)(bw - filled));
    bar[bw] = '\0';
    const char *on = color ? "\033[1m" : "", *off = color ? "\033[0m" : "";
    if (bw)
        snprintf(out, cap, "%-*.*s [%s%s%s]%s", nw, nw, pr->name, on, bar, off, tail);
    else
        snprintf(out, cap, "%-*.*s%s", nw, nw, pr->name, tail);
    return out;
}
