/*
 * edgebert instruction counter: a QEMU TCG plugin (user mode) that counts guest instructions, and
 * the classes they fall in, between markers the guest issues as a custom system call.
 *
 * Built by `edgebert devices setup` against the qemu-plugin.h of the QEMU it loads into:
 *   gcc -shared -fPIC -O2 -I DIR insn_count.c -o libinsn_count.so
 * Used as:
 *   qemu-aarch64 -plugin libinsn_count.so,out=FILE,nr=N[,blocks=BFILE] -cpu MODEL ...
 *
 * When a block is translated, each of its A64 instructions is decoded once into a class; when the
 * block executes, inline adds (no helper call, deterministic) add its instruction count to the
 * total and its per-class counts to the class counters. The guest calls syscall(N, 1, i) before
 * inference i and syscall(N, 2, i) after it; on the second the plugin appends
 *   "i <instructions> dotprod=.. i8mm=.. sve=.. fp_fma=.. simd_other=.. scalar=.."
 * to FILE. N is not a Linux syscall, so QEMU then returns ENOSYS to the guest and nothing else
 * happens. The counters are shared by all vCPUs (guest threads): counts are exact only for a
 * single-threaded guest.
 *
 * With blocks=BFILE the plugin also records which translated blocks ran inside the markers, and how
 * often (why: a cycle model, edgebert/devices/estimate.py, needs the code that really executed, not
 * just how much of it). Each translated block gets one more inline counter; on each end marker the
 * plugin appends to BFILE, for every block that ran since the begin marker,
 *   "b <id> <vaddr> <insn hex>,<insn hex>,..."   once per block (its instruction bytes, in order)
 *   "x <i> <id> <executions>"                    per marked inference
 * Blocks are QEMU translation blocks (not CFG basic blocks): the reader merges blocks with the same
 * bytes. Architecture-neutral (instruction bytes and sizes come from QEMU), so the same counter runs
 * under qemu-x86_64 to check the estimator against native runs.
 *
 * Classes (why: they show which kernel path ran; an int8 GEMM on a dot-product core should be
 * mostly SDOT/UDOT, on an i8mm core SMMLA, and an fp32 GEMM FMLA):
 *   dotprod    SDOT/UDOT: Advanced SIMD (vector, by element) and SVE (vectors, indexed)
 *   i8mm       int8 matrix multiply-accumulate SMMLA/UMMLA/USMMLA (Advanced SIMD and SVE), and
 *              the mixed-sign dot products USDOT/SUDOT (Advanced SIMD)
 *   sve        every other SVE/SVE2 instruction (op0 = 0, op1 = 0010) and SME (op0 = 1, op1 = 0000)
 *   fp_fma     Advanced SIMD FMLA/FMLS, vector and by element (single/double precision)
 *   simd_other every other Advanced SIMD and floating-point instruction, and SIMD&FP loads/stores
 *   scalar     everything else: integer arithmetic, branches, system, integer loads/stores
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

enum { C_DOTPROD, C_I8MM, C_SVE, C_FP_FMA, C_SIMD_OTHER, C_SCALAR, N_CLASSES };
static const char *class_names[N_CLASSES] = {"dotprod", "i8mm", "sve", "fp_fma", "simd_other",
                                             "scalar"};

/* Counter k = 0 is every instruction, k = 1 + class the instructions of that class. */
#define N_COUNTERS (1 + N_CLASSES)
static uint64_t start[N_COUNTERS];     /* counter values at the last begin marker */

#if QEMU_PLUGIN_VERSION >= 2
/* Plugin API 2+ (QEMU 9+): inline adds go to a per-vCPU scoreboard, summed when read. */
static struct qemu_plugin_scoreboard *board;

static qemu_plugin_u64 counter(int k)
{
    return (qemu_plugin_u64){board, k * sizeof(uint64_t)};
}

static void add_on_exec(struct qemu_plugin_tb *tb, int k, uint64_t n)
{
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb, QEMU_PLUGIN_INLINE_ADD_U64, counter(k), n);
}

static uint64_t read_counter(int k)
{
    return qemu_plugin_u64_sum(counter(k));
}

static void init_counters(void)
{
    board = qemu_plugin_scoreboard_new(N_COUNTERS * sizeof(uint64_t));
}
#else
/* Plugin API 1 (QEMU 7.2): inline adds to one shared counter per class. */
static uint64_t counters[N_COUNTERS];

static void add_on_exec(struct qemu_plugin_tb *tb, int k, uint64_t n)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &counters[k], n);
}

static uint64_t read_counter(int k)
{
    return counters[k];
}

static void init_counters(void)
{
}
#endif

/* --- executed blocks (blocks=BFILE) ------------------------------------------------------------ */
struct block {
    uint64_t vaddr;
    uint32_t n_insns;
    uint32_t n_bytes;
    uint8_t *bytes;    /* the instructions' bytes, concatenated */
    uint8_t *lens;     /* each instruction's size in bytes */
    uint64_t start;    /* executions at the last begin marker */
    int defined;       /* its "b" line is written */
    size_t idx;
    uint64_t executions; /* plugin API 1: the inline counter itself (API 2+: a scoreboard slot) */
};

static FILE *blocks_out;
static struct block **blocks;
static size_t n_blocks, cap_blocks;
static pthread_mutex_t blocks_lock = PTHREAD_MUTEX_INITIALIZER;

#if QEMU_PLUGIN_VERSION >= 2
/* Per-block execution counters: scoreboards of CHUNK u64 slots each (a scoreboard's size is fixed). */
#define CHUNK 16384
#define MAX_CHUNKS 4096
static struct qemu_plugin_scoreboard *chunks[MAX_CHUNKS];

static qemu_plugin_u64 block_slot(size_t idx)
{
    return (qemu_plugin_u64){chunks[idx / CHUNK], (idx % CHUNK) * sizeof(uint64_t)};
}

static int block_counter_new(size_t idx)
{
    if (idx / CHUNK >= MAX_CHUNKS) {
        return -1;
    }
    if (!chunks[idx / CHUNK]) {
        chunks[idx / CHUNK] = qemu_plugin_scoreboard_new(CHUNK * sizeof(uint64_t));
    }
    return 0;
}

static void block_on_exec(struct qemu_plugin_tb *tb, struct block *b)
{
    qemu_plugin_register_vcpu_tb_exec_inline_per_vcpu(tb, QEMU_PLUGIN_INLINE_ADD_U64, block_slot(b->idx), 1);
}

static uint64_t block_executions(const struct block *b)
{
    return qemu_plugin_u64_sum(block_slot(b->idx));
}
#else
static int block_counter_new(size_t idx)
{
    (void)idx;
    return 0;
}

static void block_on_exec(struct qemu_plugin_tb *tb, struct block *b)
{
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->executions, 1);
}

static uint64_t block_executions(const struct block *b)
{
    return b->executions;
}
#endif

static const uint8_t *insn_bytes(const struct qemu_plugin_insn *insn, uint8_t *buf, size_t len)
{
#if QEMU_PLUGIN_VERSION >= 3
    qemu_plugin_insn_data(insn, buf, len);
    return buf;
#else
    (void)buf;
    (void)len;
    return qemu_plugin_insn_data(insn);
#endif
}

/* A new translated block: keep its bytes and give it an execution counter (lost blocks are counted). */
static uint64_t lost_blocks;

static void record_block(struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb), total = 0;
    for (size_t i = 0; i < n; i++) {
        total += qemu_plugin_insn_size(qemu_plugin_tb_get_insn(tb, i));
    }
    struct block *b = calloc(1, sizeof(*b));
    if (!b || !(b->bytes = malloc(total ? total : 1)) || !(b->lens = malloc(n ? n : 1))) {
        lost_blocks++;
        return;
    }
    b->vaddr = qemu_plugin_tb_vaddr(tb);
    b->n_insns = n;
    b->n_bytes = total;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        size_t len = qemu_plugin_insn_size(insn);
        uint8_t buf[32];
        const uint8_t *data = insn_bytes(insn, buf, len < sizeof(buf) ? len : sizeof(buf));
        memcpy(b->bytes + at, data, len);
        b->lens[i] = (uint8_t)len;
        at += len;
    }
    pthread_mutex_lock(&blocks_lock);
    if (n_blocks == cap_blocks) {
        cap_blocks = cap_blocks ? 2 * cap_blocks : 4096;
        blocks = realloc(blocks, cap_blocks * sizeof(*blocks));
    }
    b->idx = n_blocks;
    if (!blocks || block_counter_new(b->idx) != 0) {
        pthread_mutex_unlock(&blocks_lock);
        lost_blocks++;
        return;
    }
    blocks[n_blocks++] = b;
    pthread_mutex_unlock(&blocks_lock);
    block_on_exec(tb, b);
}

static void blocks_begin(void)
{
    pthread_mutex_lock(&blocks_lock);
    for (size_t k = 0; k < n_blocks; k++) {
        blocks[k]->start = block_executions(blocks[k]);
    }
    pthread_mutex_unlock(&blocks_lock);
}

static void blocks_end(uint64_t inference)
{
    pthread_mutex_lock(&blocks_lock);
    for (size_t k = 0; k < n_blocks; k++) {
        struct block *b = blocks[k];
        uint64_t ran = block_executions(b) - b->start;
        if (!ran) {
            continue;
        }
        if (!b->defined) {
            fprintf(blocks_out, "b %zu %" PRIx64 " ", b->idx, b->vaddr);
            for (uint32_t i = 0, at = 0; i < b->n_insns; at += b->lens[i], i++) {
                if (i) {
                    fputc(',', blocks_out);
                }
                for (uint32_t j = 0; j < b->lens[i]; j++) {
                    fprintf(blocks_out, "%02x", b->bytes[at + j]);
                }
            }
            fputc('\n', blocks_out);
            b->defined = 1;
        }
        fprintf(blocks_out, "x %" PRIu64 " %zu %" PRIu64 "\n", inference, b->idx, ran);
    }
    fprintf(blocks_out, "e %" PRIu64 " lost=%" PRIu64 "\n", inference, lost_blocks);
    fflush(blocks_out);
    pthread_mutex_unlock(&blocks_lock);
}

static int64_t marker_nr = 0x4542; /* "EB" */
static FILE *out;

/* The class of one A64 instruction word (see the header comment). */
static int classify(uint32_t w)
{
    /* i8mm: SMMLA / UMMLA (0 1 U 01110 100 Rm 101001 Rn Rd), USMMLA (U=0, opcode 101011) */
    if ((w & 0xDFE0FC00u) == 0x4E80A400u || (w & 0xFFE0FC00u) == 0x4E80AC00u) {
        return C_I8MM;
    }
    /* i8mm: USDOT (vector): 0 Q 0 01110 100 Rm 100111 Rn Rd */
    if ((w & 0xBFE0FC00u) == 0x0E809C00u) {
        return C_I8MM;
    }
    /* i8mm: SUDOT / USDOT (by element): 0 Q 0 01111 s0 L M Rm 1111 H 0 Rn Rd, s = 0 or 1 */
    if ((w & 0xBF40F400u) == 0x0F00F000u) {
        return C_I8MM;
    }
    /* i8mm: SVE SMMLA / USMMLA / UMMLA: 01000101 uu 0 Zm 100110 Zn Zda */
    if ((w & 0xFF20FC00u) == 0x45009800u) {
        return C_I8MM;
    }
    /* dotprod: SVE SDOT/UDOT (vectors 01000100 1s 0 Zm 00000 U; indexed 01000100 1s 1 ...) */
    if ((w & 0xFF80F800u) == 0x44800000u) {
        return C_DOTPROD;
    }
    /* dotprod: SDOT/UDOT (vector): 0 Q U 01110 100 Rm 100101 Rn Rd */
    if ((w & 0x9FE0FC00u) == 0x0E809400u) {
        return C_DOTPROD;
    }
    /* dotprod: SDOT/UDOT (by element): 0 Q U 01111 10 L M Rm 1110 H 0 Rn Rd */
    if ((w & 0x9FC0F400u) == 0x0F80E000u) {
        return C_DOTPROD;
    }
    /* SVE: op0 (bit 31) = 0, op1 (bits 28:25) = 0010; SME: op0 = 1, op1 = 0000 */
    if ((w & 0x9E000000u) == 0x04000000u || (w & 0x9E000000u) == 0x80000000u) {
        return C_SVE;
    }
    /* fp_fma: FMLA/FMLS (vector, single/double): 0 Q 0 01110 a sz 1 Rm 110011 Rn Rd */
    if ((w & 0xBF20FC00u) == 0x0E20CC00u) {
        return C_FP_FMA;
    }
    /* fp_fma: FMLA/FMLS (by element, single/double): 0 Q 0 01111 1 sz L M Rm 0 o2 01 H 0 Rn Rd */
    if ((w & 0xBF80B400u) == 0x0F801000u) {
        return C_FP_FMA;
    }
    /* Advanced SIMD and FP data processing: bits 28:25 = x111 */
    if ((w & 0x0E000000u) == 0x0E000000u) {
        return C_SIMD_OTHER;
    }
    /* loads and stores (bits 28:25 = x1x0) of SIMD&FP registers (V, bit 26, = 1) */
    if ((w & 0x0A000000u) == 0x08000000u && (w & 0x04000000u)) {
        return C_SIMD_OTHER;
    }
    return C_SCALAR;
}

static uint32_t insn_word(const struct qemu_plugin_insn *insn)
{
    uint32_t w = 0;
#if QEMU_PLUGIN_VERSION >= 3
    qemu_plugin_insn_data(insn, &w, sizeof(w));
#else
    memcpy(&w, qemu_plugin_insn_data(insn), sizeof(w));
#endif
    return w;
}

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t n = qemu_plugin_tb_n_insns(tb);
    uint64_t per_class[N_CLASSES] = {0};
    for (size_t i = 0; i < n; i++) {
        per_class[classify(insn_word(qemu_plugin_tb_get_insn(tb, i)))]++;
    }
    add_on_exec(tb, 0, n);
    if (blocks_out) {
        record_block(tb);
    }
    for (int k = 0; k < N_CLASSES; k++) {
        if (per_class[k]) {
            add_on_exec(tb, 1 + k, per_class[k]);
        }
    }
}

static void on_syscall(qemu_plugin_id_t id, unsigned int vcpu_index, int64_t num, uint64_t a1,
                       uint64_t a2, uint64_t a3, uint64_t a4, uint64_t a5, uint64_t a6,
                       uint64_t a7, uint64_t a8)
{
    if (num != marker_nr) {
        return;
    }
    if (a1 == 1) {
        for (int k = 0; k < N_COUNTERS; k++) {
            start[k] = read_counter(k);
        }
        if (blocks_out) {
            blocks_begin();
        }
    } else if (a1 == 2 && out) {
        if (blocks_out) {
            blocks_end(a2);
        }
        fprintf(out, "%" PRIu64 " %" PRIu64, a2, read_counter(0) - start[0]);
        for (int k = 0; k < N_CLASSES; k++) {
            fprintf(out, " %s=%" PRIu64, class_names[k], read_counter(1 + k) - start[1 + k]);
        }
        fputc('\n', out);
        fflush(out);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    if (out) {
        fprintf(out, "total %" PRIu64 "\n", read_counter(0));
        fclose(out);
        out = NULL;
    }
    if (blocks_out) {
        fclose(blocks_out);
        blocks_out = NULL;
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    const char *path = NULL, *blocks_path = NULL;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            path = argv[i] + 4;
        } else if (strncmp(argv[i], "nr=", 3) == 0) {
            marker_nr = strtoll(argv[i] + 3, NULL, 0);
        } else if (strncmp(argv[i], "blocks=", 7) == 0) {
            blocks_path = argv[i] + 7;
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
    if (blocks_path && !(blocks_out = fopen(blocks_path, "w"))) {
        perror(blocks_path);
        return -1;
    }
    init_counters();
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
