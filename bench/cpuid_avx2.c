/* An LD_PRELOAD shim that makes a process see the CPU as an AVX2-only one (no AVX-512, no
 * AVX-VNNI, no AMX): the CPU of the fast-CPU issue's reference machine (an AMD EPYC with
 * AVX2 and FMA), on an AVX-512 host. onnxruntime has no switch to cap its kernels (MLAS and
 * cpuinfo read CPUID once and dispatch on it), so bench/compare.py --ort-avx2 runs it under
 * this shim to compare anvil's AVX2 kernels with onnxruntime's AVX2 kernels on one machine.
 *
 * How: the constructor turns on CPUID faulting for the process (arch_prctl ARCH_SET_CPUID 0,
 * Linux 4.12+, a CPU with "cpuid_fault" in /proc/cpuinfo: Intel since Ivy Bridge and KVM
 * guests). Every CPUID instruction then raises SIGSEGV; the handler checks that the faulting
 * instruction is CPUID (0F A2), executes the real one with faulting switched off for that
 * moment, clears the feature bits below and steps over the instruction. The setting is per
 * thread, inherited by threads and children made later and cleared by execve, so it covers
 * every library the process loads after start-up. The dynamic loader and glibc read CPUID
 * before any constructor runs, so glibc's own string functions may still use AVX-512 forms;
 * GLIBC_TUNABLES (set by compare.py next to LD_PRELOAD) switches those off too.
 *
 * On success the constructor sets ANVIL_CPUID_MASK=avx2 in the environment, which the
 * process checks; on failure it prints why and leaves the variable unset.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static int cpuidFaulting(int on) { return (int)syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

/* Clears what an AVX2-only CPU lacks; leaves SSE..AVX2, FMA, F16C, BMI, SHA, AES alone. */
static void maskLeaf(uint32_t leaf, uint32_t sub, uint32_t* a, uint32_t* b, uint32_t* c, uint32_t* d) {
  if (leaf == 7 && sub == 0) {
    /* EBX: AVX512F 16, DQ 17, IFMA 21, PF 26, ER 27, CD 28, BW 30, VL 31. */
    *b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
    /* ECX: VBMI 1, VBMI2 6, VNNI 11, BITALG 12, VPOPCNTDQ 14. */
    *c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
    /* EDX: 4VNNIW 2, 4FMAPS 3, VP2INTERSECT 8, AMX-BF16 22, AVX512-FP16 23, AMX-TILE 24, AMX-INT8 25. */
    *d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
  } else if (leaf == 7 && sub == 1) {
    /* EAX: AVX-VNNI 4, AVX512-BF16 5, AMX-FP16 21, AVX-IFMA 23. */
    *a &= ~((1u << 4) | (1u << 5) | (1u << 21) | (1u << 23));
    /* EDX: AVX-VNNI-INT8 4, AVX-NE-CONVERT 5, AMX-COMPLEX 8, AVX10 19. */
    *d &= ~((1u << 4) | (1u << 5) | (1u << 8) | (1u << 19));
  } else if (leaf == 0xd && sub == 0) {
    /* The XSAVE state components the OS may enable: drop opmask/ZMM (5-7) and AMX (17-18). */
    *a &= ~((1u << 5) | (1u << 6) | (1u << 7) | (1u << 17) | (1u << 18));
  } else if (leaf == 0x1d || leaf == 0x1e || leaf == 0x24) {
    *a = *b = *c = *d = 0; /* AMX tile and AVX10 information leaves */
  }
}

static void onSegv(int sig, siginfo_t* info, void* ctx) {
  ucontext_t* uc = (ucontext_t*)ctx;
  greg_t* g = uc->uc_mcontext.gregs;
  const unsigned char* ip = (const unsigned char*)g[REG_RIP];
  (void)info;
  if (ip[0] == 0x0f && ip[1] == 0xa2) {
    const uint32_t leaf = (uint32_t)g[REG_RAX], sub = (uint32_t)g[REG_RCX];
    uint32_t a, b, c, d;
    cpuidFaulting(0);
    __cpuid_count(leaf, sub, a, b, c, d);
    cpuidFaulting(1);
    maskLeaf(leaf, sub, &a, &b, &c, &d);
    g[REG_RAX] = a;
    g[REG_RBX] = b;
    g[REG_RCX] = c;
    g[REG_RDX] = d;
    g[REG_RIP] += 2;
    return;
  }
  /* A real fault: die of it as the process would have without the shim. */
  signal(sig, SIG_DFL);
}

__attribute__((constructor)) static void maskCpuid(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = onSegv;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0) {
    perror("cpuid_avx2: sigaction");
    return;
  }
  if (cpuidFaulting(1) != 0) {
    perror("cpuid_avx2: arch_prctl(ARCH_SET_CPUID) (needs Linux >= 4.12 and cpuid_fault)");
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  /* Check on ourselves: AVX-512F must now read as absent and AVX2 as present. */
  uint32_t a, b, c, d;
  __cpuid_count(7, 0, a, b, c, d);
  if ((b & (1u << 16)) || !(b & (1u << 5))) {
    fprintf(stderr, "cpuid_avx2: the mask did not take effect\n");
    return;
  }
  setenv("ANVIL_CPUID_MASK", "avx2", 1);
}
