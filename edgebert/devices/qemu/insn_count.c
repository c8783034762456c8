/*
 * edgebert instruction counter: a QEMU TCG plugin (user mode) that counts guest instructions
 * between markers the guest issues as a custom system call.
 *
 * Built by `edgebert devices setup` against the qemu-plugin.h of the QEMU it loads into:
 *   gcc -shared -fPIC -O2 -I DIR insn_count.c -o libinsn_count.so
 * Used as:
 *   qemu-aarch64 -plugin libinsn_count.so,out=FILE,nr=N -cpu MODEL ...
 *
 * Every translated block adds its instruction count to one counter when it executes (an inline
 * add: no helper call, deterministic). The guest calls syscall(N, 1, i) before inference i and
 * syscall(N, 2, i) after it; on the second the plugin appends "i <instructions>" to FILE. N is not
 * a Linux syscall, so QEMU then returns ENOSYS to the guest and nothing else happens. The counter is
 * shared by all vCPUs (guest threads): counts are exact only for a single-threaded guest.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t insns;       /* guest instructions executed so far */
static uint64_t start;       /* value of insns at the last begin marker */
static int64_t marker_nr = 0x4542; /* "EB" */
static FILE *out;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns,
                                             qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    if (num != marker_nr) {
        return;
    }
    if (a1 == 1) {
        start = insns;
    } else if (a1 == 2 && out) {
        fprintf(out, "%" PRIu64 " %" PRIu64 "\n", a2, insns - start);
        fflush(out);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    if (out) {
        fprintf(out, "total %" PRIu64 "\n", insns);
        fclose(out);
        out = NULL;
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "nr=", 3) == 0) {
            marker_nr = strtoll(argv[i] + 3, NULL, 0);
        } else {
            fprintf(stderr, "insn_count: unknown argument %s\n", argv[i]);
            return -1;
        }
    }
    if (!path) {
        fprintf(stderr, "insn_count: out=FILE is required\n");
        return -1;
    }
    out = fopen(path, "w");
    if (!out) {
        perror(path);
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
