//go:build !purego

#include "textflag.h"

// XTS-AES-256 with 512-bit VAES and AVX-512, sixteen blocks (four ZMM registers
// of four blocks each) at a time (IEEE 1619 §5.3, docs/FORMAT.md §6).
//
// Techniques, after the Linux kernel's aes-xts-avx10_512
// (arch/x86/crypto/aes-xts-avx-x86_64.S):
//   - AVX-512 has 32 vector registers, enough to keep all fifteen data round
//     keys broadcast into registers for the whole call, beside the data, the
//     tweaks and the next tweaks. They are loaded from the schedule in the
//     caller's state memory at the start of every call and wiped before
//     returning, never copied anywhere else.
//   - Each ZMM register holds four consecutive tweaks. The next sixteen tweaks
//     are the current ones times x^16, one VPCLMULQDQ per register: shift each
//     128-bit lane left by two bytes and XOR in the sixteen bits shifted out
//     times 0x87.
//   - The first sixteen tweaks of a sector are computed from its first tweak all
//     at once, with per-lane shift counts (VPSLLVQ, VPSRLVQ): no serial chain
//     of multiplications by x.
//   - Round 0 and the tweak XOR are one three-way XOR (VPTERNLOGD), and the
//     final tweak XOR is folded into the last round:
//     AESENCLAST(k, a) ^ t == AESENCLAST(k ^ t, a), likewise for AESDECLAST.
//   - A sector whose size is not a multiple of 256 bytes ends with whole
//     vectors and one masked vector of one to three blocks (opmask loads and
//     stores, which touch no memory outside the mask).
//   - First tweaks are encrypted sixteen sectors at a time (four ZMM
//     registers) into the frame, or alone, in a register, when one sector is
//     left (the latency of a one-sector call).
//
// Registers:
//	DI      data round keys (encryption or decryption schedule)
//	R12     tweak-key round keys
//	SI, DX  source and destination
//	CX      sector size in bytes
//	BX      sectors left
//	R8      the next sector whose first tweak is not yet computed
//	R10     sectors left whose first tweak is in the frame; R11 points at it
//	R9      bytes left in the current sector
//	AX, R13 scratch; K1 the mask of a partial vector
//	Z0-Z3   data blocks
//	Z4-Z7   the tweaks of the blocks in Z0-Z3
//	Z8-Z11  the next tweaks, being computed
//	Z12-Z14, Z31 scratch; Z14 also the sector's first tweak, in every lane
//	Z15     gf128 in every lane
//	Z16-Z30 data round keys 0-14, in every lane
//
// The frame holds up to sixteen first tweaks and is wiped before returning;
// so are all 32 vector registers: VPXORD on X16-X31 clears Z16-Z31, and
// VZEROALL clears Z0-Z15 and leaves the upper halves clean, so that no
// AVX-SSE transition penalty follows.

// The low 64 bits are the XTS reduction (x^7 + x^2 + x + 1); the high 64 bits
// are the carry between the two halves.
DATA avx512gf128<>+0(SB)/8, $0x87
DATA avx512gf128<>+8(SB)/8, $0x01
GLOBL avx512gf128<>(SB), RODATA|NOPTR, $16

// Per-lane shift counts for the first sixteen tweaks of a sector, one byte per
// 64-bit half (VPMOVZXBQ): block 4j+l of the sector has tweak T·x^(4j+l), so
// row j holds 4j+l (left shifts) and 64-(4j+l) (right shifts, the carries) for
// the lanes l = 0…3.
DATA avx512shl<>+0(SB)/8, $0x0303020201010000
DATA avx512shl<>+8(SB)/8, $0x0707060605050404
DATA avx512shl<>+16(SB)/8, $0x0b0b0a0a09090808
DATA avx512shl<>+24(SB)/8, $0x0f0f0e0e0d0d0c0c
GLOBL avx512shl<>(SB), RODATA|NOPTR, $32
DATA avx512shr<>+0(SB)/8, $0x3d3d3e3e3f3f4040
DATA avx512shr<>+8(SB)/8, $0x39393a3a3b3b3c3c
DATA avx512shr<>+16(SB)/8, $0x3535363637373838
DATA avx512shr<>+24(SB)/8, $0x3131323233333434
GLOBL avx512shr<>(SB), RODATA|NOPTR, $32

// Sector number offsets 0…3 in the low halves of four lanes, and 4 in each.
DATA avx512sectors<>+0(SB)/8, $0
DATA avx512sectors<>+8(SB)/8, $0
DATA avx512sectors<>+16(SB)/8, $1
DATA avx512sectors<>+24(SB)/8, $0
DATA avx512sectors<>+32(SB)/8, $2
DATA avx512sectors<>+40(SB)/8, $0
DATA avx512sectors<>+48(SB)/8, $3
DATA avx512sectors<>+56(SB)/8, $0
DATA avx512sectors<>+64(SB)/8, $4
DATA avx512sectors<>+72(SB)/8, $0
GLOBL avx512sectors<>(SB), RODATA|NOPTR, $80

// Opmasks of 64-bit elements for a partial vector of 1, 2 or 3 blocks,
// indexed by the block count.
DATA avx512tailmask<>+0(SB)/4, $0x3f0f0300
GLOBL avx512tailmask<>(SB), RODATA|NOPTR, $4

// LOADKEYS broadcasts the fifteen round keys at (DI) into Z16-Z30.
#define LOADKEYS                   \
	VBROADCASTI32X4 0(DI), Z16   \
	VBROADCASTI32X4 16(DI), Z17  \
	VBROADCASTI32X4 32(DI), Z18  \
	VBROADCASTI32X4 48(DI), Z19  \
	VBROADCASTI32X4 64(DI), Z20  \
	VBROADCASTI32X4 80(DI), Z21  \
	VBROADCASTI32X4 96(DI), Z22  \
	VBROADCASTI32X4 112(DI), Z23 \
	VBROADCASTI32X4 128(DI), Z24 \
	VBROADCASTI32X4 144(DI), Z25 \
	VBROADCASTI32X4 160(DI), Z26 \
	VBROADCASTI32X4 176(DI), Z27 \
	VBROADCASTI32X4 192(DI), Z28 \
	VBROADCASTI32X4 208(DI), Z29 \
	VBROADCASTI32X4 224(DI), Z30

// ROUND4 applies one AES round with round key k to Z0-Z3.
#define ROUND4(AESOP, k) \
	AESOP k, Z0, Z0  \
	AESOP k, Z1, Z1  \
	AESOP k, Z2, Z2  \
	AESOP k, Z3, Z3

// ROUNDS1 applies the thirteen middle rounds to Z0.
#define ROUNDS1(AESOP)    \
	AESOP Z17, Z0, Z0 \
	AESOP Z18, Z0, Z0 \
	AESOP Z19, Z0, Z0 \
	AESOP Z20, Z0, Z0 \
	AESOP Z21, Z0, Z0 \
	AESOP Z22, Z0, Z0 \
	AESOP Z23, Z0, Z0 \
	AESOP Z24, Z0, Z0 \
	AESOP Z25, Z0, Z0 \
	AESOP Z26, Z0, Z0 \
	AESOP Z27, Z0, Z0 \
	AESOP Z28, Z0, Z0 \
	AESOP Z29, Z0, Z0

// FIRSTTWEAKS sets Z4-Z7 to the first sixteen tweaks of a sector from its first
// tweak T in every lane of Z14: lane l of Zj+4 is T·x^(4j+l). Clobbers Z0-Z3
// and Z8-Z13.
#define FIRSTTWEAKS                              \
	VPMOVZXBQ  avx512shr<>+0(SB), Z8         \
	VPMOVZXBQ  avx512shr<>+8(SB), Z9         \
	VPMOVZXBQ  avx512shr<>+16(SB), Z10       \
	VPMOVZXBQ  avx512shr<>+24(SB), Z11       \
	VPMOVZXBQ  avx512shl<>+0(SB), Z4         \
	VPMOVZXBQ  avx512shl<>+8(SB), Z5         \
	VPMOVZXBQ  avx512shl<>+16(SB), Z6        \
	VPMOVZXBQ  avx512shl<>+24(SB), Z7        \
	VPSRLVQ    Z8, Z14, Z8                   \
	VPSRLVQ    Z9, Z14, Z9                   \
	VPSRLVQ    Z10, Z14, Z10                 \
	VPSRLVQ    Z11, Z14, Z11                 \
	VPSLLVQ    Z4, Z14, Z4                   \
	VPSLLVQ    Z5, Z14, Z5                   \
	VPSLLVQ    Z6, Z14, Z6                   \
	VPSLLVQ    Z7, Z14, Z7                   \
	VPCLMULQDQ $0x01, Z15, Z8, Z0            \
	VPCLMULQDQ $0x01, Z15, Z9, Z1            \
	VPCLMULQDQ $0x01, Z15, Z10, Z2           \
	VPCLMULQDQ $0x01, Z15, Z11, Z3           \
	VPSLLDQ    $8, Z8, Z8                    \
	VPSLLDQ    $8, Z9, Z9                    \
	VPSLLDQ    $8, Z10, Z10                  \
	VPSLLDQ    $8, Z11, Z11                  \
	VPTERNLOGD $0x96, Z8, Z0, Z4             \
	VPTERNLOGD $0x96, Z9, Z1, Z5             \
	VPTERNLOGD $0x96, Z10, Z2, Z6            \
	VPTERNLOGD $0x96, Z11, Z3, Z7

// XTS16 en- or decrypts the sixteen blocks at (SI) into (DX) with tweaks Z4-Z7
// and advances Z4-Z7 to the next sixteen tweaks (times x^16), computed in
// Z8-Z11 between the rounds.
#define XTS16(AESOP, AESLAST)              \
	VMOVDQU64  (SI), Z0                \
	VMOVDQU64  64(SI), Z1              \
	VMOVDQU64  128(SI), Z2             \
	VMOVDQU64  192(SI), Z3             \
	VPTERNLOGD $0x96, Z4, Z16, Z0      \
	VPTERNLOGD $0x96, Z5, Z16, Z1      \
	VPTERNLOGD $0x96, Z6, Z16, Z2      \
	VPTERNLOGD $0x96, Z7, Z16, Z3      \
	VPSRLDQ    $14, Z4, Z8             \
	VPSRLDQ    $14, Z5, Z9             \
	ROUND4(AESOP, Z17)                 \
	VPSRLDQ    $14, Z6, Z10            \
	VPSRLDQ    $14, Z7, Z11            \
	ROUND4(AESOP, Z18)                 \
	VPCLMULQDQ $0x00, Z15, Z8, Z8      \
	VPCLMULQDQ $0x00, Z15, Z9, Z9      \
	ROUND4(AESOP, Z19)                 \
	VPCLMULQDQ $0x00, Z15, Z10, Z10    \
	VPCLMULQDQ $0x00, Z15, Z11, Z11    \
	ROUND4(AESOP, Z20)                 \
	ROUND4(AESOP, Z21)                 \
	ROUND4(AESOP, Z22)                 \
	ROUND4(AESOP, Z23)                 \
	ROUND4(AESOP, Z24)                 \
	ROUND4(AESOP, Z25)                 \
	ROUND4(AESOP, Z26)                 \
	ROUND4(AESOP, Z27)                 \
	ROUND4(AESOP, Z28)                 \
	ROUND4(AESOP, Z29)                 \
	VPXORD     Z4, Z30, Z12            \
	VPXORD     Z5, Z30, Z13            \
	VPXORD     Z6, Z30, Z14            \
	VPXORD     Z7, Z30, Z31            \
	AESLAST    Z12, Z0, Z0             \
	AESLAST    Z13, Z1, Z1             \
	AESLAST    Z14, Z2, Z2             \
	AESLAST    Z31, Z3, Z3             \
	VMOVDQU64  Z0, (DX)                \
	VMOVDQU64  Z1, 64(DX)              \
	VMOVDQU64  Z2, 128(DX)             \
	VMOVDQU64  Z3, 192(DX)             \
	VPSLLDQ    $2, Z4, Z4              \
	VPSLLDQ    $2, Z5, Z5              \
	VPSLLDQ    $2, Z6, Z6              \
	VPSLLDQ    $2, Z7, Z7              \
	VPXORD     Z8, Z4, Z4              \
	VPXORD     Z9, Z5, Z5              \
	VPXORD     Z10, Z6, Z6             \
	VPXORD     Z11, Z7, Z7

// XTS4 en- or decrypts the (up to) four blocks in Z0 with tweaks Z4.
#define XTS4(AESOP, AESLAST)               \
	VPTERNLOGD $0x96, Z4, Z16, Z0      \
	ROUNDS1(AESOP)                     \
	VPXORD     Z4, Z30, Z12            \
	AESLAST    Z12, Z0, Z0

// TWEAKS16 stores the first tweaks of sectors R8 … R8+15 in the frame: each is
// the 128-bit little-endian sector number encrypted with the tweak key. The
// tweak-key round keys are broadcast into Z31 as they are used. (Sector numbers
// past the last one of the call may wrap around; their tweaks are not used.)
#define TWEAKS16                                 \
	MOVL            $0x55, AX                \
	KMOVW           AX, K1                   \
	VPBROADCASTQ.Z  R8, K1, Z0               \
	VPADDQ          avx512sectors<>(SB), Z0, Z0 \
	VBROADCASTI32X4 avx512sectors<>+64(SB), Z31 \
	VPADDQ          Z31, Z0, Z1              \
	VPADDQ          Z31, Z1, Z2              \
	VPADDQ          Z31, Z2, Z3              \
	VBROADCASTI32X4 0(R12), Z31              \
	ROUND4(VPXORD, Z31)                      \
	VBROADCASTI32X4 16(R12), Z31             \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 32(R12), Z31             \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 48(R12), Z31             \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 64(R12), Z31             \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 80(R12), Z31             \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 96(R12), Z31             \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 112(R12), Z31            \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 128(R12), Z31            \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 144(R12), Z31            \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 160(R12), Z31            \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 176(R12), Z31            \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 192(R12), Z31            \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 208(R12), Z31            \
	ROUND4(VAESENC, Z31)                     \
	VBROADCASTI32X4 224(R12), Z31            \
	ROUND4(VAESENCLAST, Z31)                 \
	VMOVDQU64       Z0, 0(SP)                \
	VMOVDQU64       Z1, 64(SP)               \
	VMOVDQU64       Z2, 128(SP)              \
	VMOVDQU64       Z3, 192(SP)

// TWEAKS1 sets X14 to the first tweak of sector R8; it stays in the register
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
	VAESENCLAST 224(R12), X0, X14

// XTSBODY processes the sectors; DI and R12 are set by the caller.
#define XTSBODY(AESOP, AESLAST)                  \
	MOVQ  dst+8(FP), DX                      \
	MOVQ  src+16(FP), SI                     \
	MOVQ  sectorSize+24(FP), CX              \
	MOVQ  sectors+32(FP), BX                 \
	MOVQ  sector+40(FP), R8                  \
	TESTQ BX, BX                             \
	JZ    done                               \
	LOADKEYS                                 \
	VBROADCASTI32X4 avx512gf128<>(SB), Z15   \
group:                                           \
	CMPQ BX, $1                              \
	JE   one                                 \
	TWEAKS16                                 \
	ADDQ $16, R8                             \
	MOVQ $16, R10                            \
	LEAQ 0(SP), R11                          \
sector:                                          \
	VBROADCASTI32X4 (R11), Z14               \
	JMP  haveTweak                           \
one:                                             \
	TWEAKS1                                  \
	INCQ R8                                  \
	VSHUFI32X4 $0, Z14, Z14, Z14             \
haveTweak:                                       \
	FIRSTTWEAKS                              \
	MOVQ  CX, R9                             \
	CMPQ  R9, $256                           \
	JB    tail                               \
loop16:                                          \
	XTS16(AESOP, AESLAST)                    \
	ADDQ  $256, SI                           \
	ADDQ  $256, DX                           \
	SUBQ  $256, R9                           \
	CMPQ  R9, $256                           \
	JAE   loop16                             \
tail:                                            \
	CMPQ  R9, $64                            \
	JB    partial                            \
	VMOVDQU64 (SI), Z0                       \
	XTS4(AESOP, AESLAST)                     \
	VMOVDQU64 Z0, (DX)                       \
	ADDQ  $64, SI                            \
	ADDQ  $64, DX                            \
	SUBQ  $64, R9                            \
	VMOVDQA64 Z5, Z4                         \
	VMOVDQA64 Z6, Z5                         \
	VMOVDQA64 Z7, Z6                         \
	JMP   tail                               \
partial:                                         \
	TESTQ R9, R9                             \
	JZ    sectorDone                         \
	MOVQ  R9, AX                             \
	SHRQ  $4, AX                             \
	LEAQ  avx512tailmask<>(SB), R13          \
	MOVBLZX (R13)(AX*1), AX                  \
	KMOVW AX, K1                             \
	VMOVDQU64.Z (SI), K1, Z0                 \
	XTS4(AESOP, AESLAST)                     \
	VMOVDQU64 Z0, K1, (DX)                   \
	ADDQ  R9, SI                             \
	ADDQ  R9, DX                             \
sectorDone:                                      \
	ADDQ  $16, R11                           \
	DECQ  BX                                 \
	JZ    done                               \
	DECQ  R10                                \
	JNZ   sector                             \
	JMP   group                              \
done:                                            \
	VPXORD    Z0, Z0, Z0                     \
	VMOVDQU64 Z0, 0(SP)                      \
	VMOVDQU64 Z0, 64(SP)                     \
	VMOVDQU64 Z0, 128(SP)                    \
	VMOVDQU64 Z0, 192(SP)                    \
	VPXORD    X16, X16, X16                  \
	VPXORD    X17, X17, X17                  \
	VPXORD    X18, X18, X18                  \
	VPXORD    X19, X19, X19                  \
	VPXORD    X20, X20, X20                  \
	VPXORD    X21, X21, X21                  \
	VPXORD    X22, X22, X22                  \
	VPXORD    X23, X23, X23                  \
	VPXORD    X24, X24, X24                  \
	VPXORD    X25, X25, X25                  \
	VPXORD    X26, X26, X26                  \
	VPXORD    X27, X27, X27                  \
	VPXORD    X28, X28, X28                  \
	VPXORD    X29, X29, X29                  \
	VPXORD    X30, X30, X30                  \
	VPXORD    X31, X31, X31                  \
	VZEROALL                                 \
	RET

// func encryptVAESAVX512(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)
TEXT ·encryptVAESAVX512(SB), NOSPLIT, $256-48
	MOVQ ks+0(FP), DI
	LEAQ 480(DI), R12
	XTSBODY(VAESENC, VAESENCLAST)

// func decryptVAESAVX512(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)
TEXT ·decryptVAESAVX512(SB), NOSPLIT, $256-48
	MOVQ ks+0(FP), DI
	LEAQ 480(DI), R12
	ADDQ $240, DI
	XTSBODY(VAESDEC, VAESDECLAST)
