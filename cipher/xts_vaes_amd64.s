//go:build !purego

#include "textflag.h"

// XTS-AES-256 with 256-bit VAES and AVX2, eight blocks (four YMM registers of two
// blocks each) at a time (IEEE 1619 §5.3, docs/FORMAT.md §6).
//
// Techniques, after the Linux kernel's arch/x86/crypto/aes-xts-avx-x86_64.S:
//   - Each YMM register holds two consecutive tweaks. The next eight tweaks are
//     the current ones times x^8, one VPCLMULQDQ per register: shift each 128-bit
//     lane left by one byte and XOR in the byte shifted out times 0x87. This
//     breaks the serial chain of multiplications by x.
//   - The final tweak XOR is folded into the last round:
//     AESENCLAST(k, a) ^ t == AESENCLAST(k ^ t, a), likewise for AESDECLAST,
//     which takes a dependent XOR off the critical path.
//   - Round keys are broadcast to both lanes from the 16-byte schedule in state
//     (VBROADCASTI128) as they are used: the schedule stays in the caller's memory
//     and is not copied to the stack.
//
// Registers:
//	DI      data round keys (encryption or decryption schedule)
//	R12     tweak-key round keys
//	SI, DX  source and destination
//	CX      sector size in bytes
//	BX      sectors left
//	R8      the next sector whose tweak is not yet computed
//	R10     sectors left whose first tweak is in the frame; R11 points at it
//	R9      bytes left in the current sector
//	Y0-Y3   data blocks
//	Y4, Y5  round key, scratch
//	Y6-Y9   the tweaks of the blocks in Y0-Y3
//	Y10-Y13 the next tweaks, being computed
//	Y14     gf128 in both lanes
//	Y15     round key 0 in both lanes
//
// The frame holds up to eight first tweaks and is wiped before returning; so are
// the registers (VZEROALL, which also avoids AVX-SSE transition penalties).

// The low 64 bits are the XTS reduction (x^7 + x^2 + x + 1); the high 64 bits
// are the carry between the two halves, used by the PSHUFD/PSRAD trick.
DATA gf128<>+0(SB)/8, $0x87
DATA gf128<>+8(SB)/8, $0x01
GLOBL gf128<>(SB), RODATA|NOPTR, $16

// ROUND4 applies one AES round with round key off(base), broadcast, to Y0-Y3.
#define ROUND4(AESOP, off, base) \
	VBROADCASTI128 off(base), Y4 \
	AESOP Y4, Y0, Y0 \
	AESOP Y4, Y1, Y1 \
	AESOP Y4, Y2, Y2 \
	AESOP Y4, Y3, Y3

// MULXK sets dst = src·x^k in each 128-bit lane, for 0 < k < 64, with tmp1 and
// tmp2: the bits shifted out of the low half move into the high half, and those
// shifted out of the high half are reduced by one carry-less multiplication.
#define MULXK(src, dst, k, tmp1, tmp2)   \
	VPSRLQ     $(64-k), src, tmp1        \
	VPCLMULQDQ $0x01, Y14, tmp1, tmp2    \
	VPSLLDQ    $8, tmp1, tmp1            \
	VPSLLQ     $k, src, dst              \
	VPXOR      tmp1, dst, dst            \
	VPXOR      tmp2, dst, dst

// FIRSTTWEAKS sets Y6-Y9 to the first eight tweaks of a sector from its first
// tweak in X6 (upper lane zero).
#define FIRSTTWEAKS                      \
	VPSHUFD     $0x13, X6, X5            \
	VPADDQ      X6, X6, X4               \
	VPSRAD      $31, X5, X5              \
	VPAND       X14, X5, X5              \
	VPXOR       X5, X4, X4               \
	VINSERTI128 $1, X4, Y6, Y6           \
	MULXK(Y6, Y7, 2, Y0, Y1)             \
	MULXK(Y6, Y8, 4, Y2, Y3)             \
	MULXK(Y6, Y9, 6, Y4, Y5)

// XTS8 en- or decrypts the eight blocks at (SI) into (DX) with tweaks Y6-Y9 and
// advances Y6-Y9 to the next eight tweaks (times x^8), computed in Y10-Y13
// between the rounds.
#define XTS8(AESOP, AESLAST)              \
	VPXOR (SI), Y15, Y0                   \
	VPXOR 32(SI), Y15, Y1                 \
	VPXOR 64(SI), Y15, Y2                 \
	VPXOR 96(SI), Y15, Y3                 \
	VPXOR Y6, Y0, Y0                      \
	VPXOR Y7, Y1, Y1                      \
	VPXOR Y8, Y2, Y2                      \
	VPXOR Y9, Y3, Y3                      \
	ROUND4(AESOP, 16, DI)                 \
	VPSRLDQ $15, Y6, Y10                  \
	VPSRLDQ $15, Y7, Y11                  \
	ROUND4(AESOP, 32, DI)                 \
	VPSRLDQ $15, Y8, Y12                  \
	VPSRLDQ $15, Y9, Y13                  \
	ROUND4(AESOP, 48, DI)                 \
	VPCLMULQDQ $0x00, Y14, Y10, Y10       \
	VPCLMULQDQ $0x00, Y14, Y11, Y11       \
	ROUND4(AESOP, 64, DI)                 \
	VPCLMULQDQ $0x00, Y14, Y12, Y12       \
	VPCLMULQDQ $0x00, Y14, Y13, Y13       \
	ROUND4(AESOP, 80, DI)                 \
	ROUND4(AESOP, 96, DI)                 \
	ROUND4(AESOP, 112, DI)                \
	ROUND4(AESOP, 128, DI)                \
	ROUND4(AESOP, 144, DI)                \
	ROUND4(AESOP, 160, DI)                \
	ROUND4(AESOP, 176, DI)                \
	ROUND4(AESOP, 192, DI)                \
	ROUND4(AESOP, 208, DI)                \
	VBROADCASTI128 224(DI), Y4            \
	VPXOR   Y6, Y4, Y5                    \
	AESLAST Y5, Y0, Y0                    \
	VPXOR   Y7, Y4, Y5                    \
	AESLAST Y5, Y1, Y1                    \
	VPXOR   Y8, Y4, Y5                    \
	VPXOR   Y9, Y4, Y4                    \
	AESLAST Y5, Y2, Y2                    \
	AESLAST Y4, Y3, Y3                    \
	VMOVDQU Y0, (DX)                      \
	VMOVDQU Y1, 32(DX)                    \
	VMOVDQU Y2, 64(DX)                    \
	VMOVDQU Y3, 96(DX)                    \
	VPSLLDQ $1, Y6, Y6                    \
	VPSLLDQ $1, Y7, Y7                    \
	VPSLLDQ $1, Y8, Y8                    \
	VPSLLDQ $1, Y9, Y9                    \
	VPXOR   Y10, Y6, Y6                   \
	VPXOR   Y11, Y7, Y7                   \
	VPXOR   Y12, Y8, Y8                   \
	VPXOR   Y13, Y9, Y9

// ROUND1 applies one AES round with round key off(DI) to Y0.
#define ROUND1(AESOP, off)           \
	VBROADCASTI128 off(DI), Y4   \
	AESOP Y4, Y0, Y0

// XTS2 en- or decrypts the two blocks at (SI) into (DX) with tweaks Y6.
#define XTS2(AESOP, AESLAST)         \
	VPXOR (SI), Y15, Y0          \
	VPXOR Y6, Y0, Y0             \
	ROUND1(AESOP, 16)            \
	ROUND1(AESOP, 32)            \
	ROUND1(AESOP, 48)            \
	ROUND1(AESOP, 64)            \
	ROUND1(AESOP, 80)            \
	ROUND1(AESOP, 96)            \
	ROUND1(AESOP, 112)           \
	ROUND1(AESOP, 128)           \
	ROUND1(AESOP, 144)           \
	ROUND1(AESOP, 160)           \
	ROUND1(AESOP, 176)           \
	ROUND1(AESOP, 192)           \
	ROUND1(AESOP, 208)           \
	VBROADCASTI128 224(DI), Y4   \
	VPXOR   Y6, Y4, Y4           \
	AESLAST Y4, Y0, Y0           \
	VMOVDQU Y0, (DX)

// XTS1 en- or decrypts the block at (SI) into (DX) with tweak X6.
#define XTS1(AESOP, AESLAST)         \
	VPXOR   (SI), X15, X0        \
	VPXOR   X6, X0, X0           \
	AESOP   16(DI), X0, X0       \
	AESOP   32(DI), X0, X0       \
	AESOP   48(DI), X0, X0       \
	AESOP   64(DI), X0, X0       \
	AESOP   80(DI), X0, X0       \
	AESOP   96(DI), X0, X0       \
	AESOP   112(DI), X0, X0      \
	AESOP   128(DI), X0, X0      \
	AESOP   144(DI), X0, X0      \
	AESOP   160(DI), X0, X0      \
	AESOP   176(DI), X0, X0      \
	AESOP   192(DI), X0, X0      \
	AESOP   208(DI), X0, X0      \
	VPXOR   224(DI), X6, X4      \
	AESLAST X4, X0, X0           \
	VMOVDQU X0, (DX)

// SECTORPAIR sets reg to the 128-bit little-endian numbers R8+lo and R8+lo+1 in
// its two lanes; clobbers AX and X5.
#define SECTORPAIR(reg, xreg, lo)     \
	LEAQ        lo(R8), AX        \
	VMOVQ       AX, xreg          \
	LEAQ        (lo+1)(R8), AX    \
	VMOVQ       AX, X5            \
	VINSERTI128 $1, X5, reg, reg

// TWEAKS8 stores the first tweaks of sectors R8 … R8+7 in the frame: each is the
// 128-bit little-endian sector number encrypted with the tweak key.
#define TWEAKS8                       \
	SECTORPAIR(Y0, X0, 0)         \
	SECTORPAIR(Y1, X1, 2)         \
	SECTORPAIR(Y2, X2, 4)         \
	SECTORPAIR(Y3, X3, 6)         \
	ROUND4(VPXOR, 0, R12)         \
	ROUND4(VAESENC, 16, R12)      \
	ROUND4(VAESENC, 32, R12)      \
	ROUND4(VAESENC, 48, R12)      \
	ROUND4(VAESENC, 64, R12)      \
	ROUND4(VAESENC, 80, R12)      \
	ROUND4(VAESENC, 96, R12)      \
	ROUND4(VAESENC, 112, R12)     \
	ROUND4(VAESENC, 128, R12)     \
	ROUND4(VAESENC, 144, R12)     \
	ROUND4(VAESENC, 160, R12)     \
	ROUND4(VAESENC, 176, R12)     \
	ROUND4(VAESENC, 192, R12)     \
	ROUND4(VAESENC, 208, R12)     \
	ROUND4(VAESENCLAST, 224, R12) \
	VMOVDQU Y0, 0(SP)             \
	VMOVDQU Y1, 32(SP)            \
	VMOVDQU Y2, 64(SP)            \
	VMOVDQU Y3, 96(SP)

// TWEAKS1 sets X6 to the first tweak of sector R8; it stays in the register
// (no store and reload through the frame: this is the latency of a one-sector
// call).
#define TWEAKS1                         \
	VMOVQ       R8, X0              \
	VPXOR       0(R12), X0, X0      \
	VAESENC     16(R12), X0, X0     \
	VAESENC     32(R12), X0, X0     \
	VAESENC     48(R12), X0, X0     \
	VAESENC     64(R12), X0, X0     \
	VAESENC     80(R12), X0, X0     \
	VAESENC     96(R12), X0, X0     \
	VAESENC     112(R12), X0, X0    \
	VAESENC     128(R12), X0, X0    \
	VAESENC     144(R12), X0, X0    \
	VAESENC     160(R12), X0, X0    \
	VAESENC     176(R12), X0, X0    \
	VAESENC     192(R12), X0, X0    \
	VAESENC     208(R12), X0, X0    \
	VAESENCLAST 224(R12), X0, X6

// XTSBODY processes the sectors; DI and R12 are set by the caller.
#define XTSBODY(AESOP, AESLAST)         \
	MOVQ  dst+8(FP), DX             \
	MOVQ  src+16(FP), SI            \
	MOVQ  sectorSize+24(FP), CX     \
	MOVQ  sectors+32(FP), BX        \
	MOVQ  sector+40(FP), R8         \
	TESTQ BX, BX                    \
	JZ    done                      \
	VBROADCASTI128 gf128<>(SB), Y14 \
	VBROADCASTI128 0(DI), Y15       \
group:                                  \
	CMPQ BX, $8                     \
	JB   one                        \
	TWEAKS8                         \
	ADDQ $8, R8                     \
	MOVQ $8, R10                    \
	JMP  firstSector                \
one:                                    \
	TWEAKS1                         \
	INCQ R8                         \
	MOVQ $1, R10                    \
	JMP  haveTweak                  \
firstSector:                            \
	LEAQ 0(SP), R11                 \
sector:                                 \
	VMOVDQU (R11), X6               \
haveTweak:                              \
	FIRSTTWEAKS                     \
	MOVQ  CX, R9                    \
	CMPQ  R9, $128                  \
	JB    tail                      \
loop8:                                  \
	XTS8(AESOP, AESLAST)            \
	ADDQ  $128, SI                  \
	ADDQ  $128, DX                  \
	SUBQ  $128, R9                  \
	CMPQ  R9, $128                  \
	JAE   loop8                     \
tail:                                   \
	CMPQ  R9, $32                   \
	JB    tail16                    \
	XTS2(AESOP, AESLAST)            \
	ADDQ  $32, SI                   \
	ADDQ  $32, DX                   \
	SUBQ  $32, R9                   \
	VMOVDQA Y7, Y6                  \
	VMOVDQA Y8, Y7                  \
	VMOVDQA Y9, Y8                  \
	JMP   tail                      \
tail16:                                 \
	TESTQ R9, R9                    \
	JZ    sectorDone                \
	XTS1(AESOP, AESLAST)            \
	ADDQ  $16, SI                   \
	ADDQ  $16, DX                   \
sectorDone:                             \
	ADDQ  $16, R11                  \
	DECQ  BX                        \
	DECQ  R10                       \
	JNZ   sector                    \
	TESTQ BX, BX                    \
	JNZ   group                     \
done:                                   \
	VPXOR   Y0, Y0, Y0              \
	VMOVDQU Y0, 0(SP)               \
	VMOVDQU Y0, 32(SP)              \
	VMOVDQU Y0, 64(SP)              \
	VMOVDQU Y0, 96(SP)              \
	VZEROALL                        \
	RET

// func encryptVAESAVX2(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)
TEXT ·encryptVAESAVX2(SB), NOSPLIT, $128-48
	MOVQ ks+0(FP), DI
	LEAQ 480(DI), R12
	XTSBODY(VAESENC, VAESENCLAST)

// func decryptVAESAVX2(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)
TEXT ·decryptVAESAVX2(SB), NOSPLIT, $128-48
	MOVQ ks+0(FP), DI
	LEAQ 480(DI), R12
	ADDQ $240, DI
	XTSBODY(VAESDEC, VAESDECLAST)
