//go:build !purego

#include "textflag.h"

// XTS-AES-256 with AES-NI, eight blocks at a time (IEEE 1619 §5.3, docs/FORMAT.md §6).
//
// AESENC has a latency of several cycles but issues once or twice per cycle, so
// eight independent blocks keep the AES unit busy. Each tweak is the previous one
// multiplied by x (MULX); the first tweak of a sector is its number encrypted with
// the tweak key, done eight sectors at a time when there are enough of them.
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
//	X0-X7   data blocks (scratch while the tweaks are being computed)
//	X8-X15  the tweaks of the blocks in X0-X7
//
// The frame holds up to eight first tweaks and is wiped before returning, as are
// the registers. Round keys are read from the schedule with memory operands: it is
// 16-byte aligned, as legacy SSE encodings require.

// The XTS polynomial for MULX: 0x87 is XORed into the low half when the tweak's
// top bit is carried out; 1 carries bit 63 into the high half.
DATA gf128<>+0(SB)/8, $0x87
DATA gf128<>+8(SB)/8, $0x01
GLOBL gf128<>(SB), RODATA|NOPTR, $16

// MULX sets dst = src·x in GF(2^128) (XTS convention: little-endian, reduced by
// x^128 + x^7 + x^2 + x + 1). poly holds gf128; tmp is clobbered; dst may be src.
// PADDQ shifts each 64-bit half left by one; PSHUFD+PSRAL spread the two bits
// that were shifted out into masks that PAND turns into the carry and reduction.
#define MULX(src, dst, tmp, poly) \
	PSHUFD $0x13, src, tmp \
	MOVO   src, dst        \
	PADDQ  dst, dst        \
	PSRAL  $31, tmp        \
	PAND   poly, tmp       \
	PXOR   tmp, dst

// ROUND8 applies one AES round with round key off(DI) to X0-X7.
#define ROUND8(AESOP, off) \
	AESOP off(DI), X0 \
	AESOP off(DI), X1 \
	AESOP off(DI), X2 \
	AESOP off(DI), X3 \
	AESOP off(DI), X4 \
	AESOP off(DI), X5 \
	AESOP off(DI), X6 \
	AESOP off(DI), X7

// XTS8 en- or decrypts the eight blocks at (SI) into (DX); X8 holds the first
// tweak on entry and the next block's tweak on exit.
#define XTS8(AESOP, AESLAST)     \
	MOVOU gf128<>(SB), X1        \
	MULX(X8, X9, X0, X1)         \
	MULX(X9, X10, X0, X1)        \
	MULX(X10, X11, X0, X1)       \
	MULX(X11, X12, X0, X1)       \
	MULX(X12, X13, X0, X1)       \
	MULX(X13, X14, X0, X1)       \
	MULX(X14, X15, X0, X1)       \
	MOVOU 0(SI), X0              \
	MOVOU 16(SI), X1             \
	MOVOU 32(SI), X2             \
	MOVOU 48(SI), X3             \
	MOVOU 64(SI), X4             \
	MOVOU 80(SI), X5             \
	MOVOU 96(SI), X6             \
	MOVOU 112(SI), X7            \
	PXOR  X8, X0                 \
	PXOR  X9, X1                 \
	PXOR  X10, X2                \
	PXOR  X11, X3                \
	PXOR  X12, X4                \
	PXOR  X13, X5                \
	PXOR  X14, X6                \
	PXOR  X15, X7                \
	ROUND8(PXOR, 0)              \
	ROUND8(AESOP, 16)            \
	ROUND8(AESOP, 32)            \
	ROUND8(AESOP, 48)            \
	ROUND8(AESOP, 64)            \
	ROUND8(AESOP, 80)            \
	ROUND8(AESOP, 96)            \
	ROUND8(AESOP, 112)           \
	ROUND8(AESOP, 128)           \
	ROUND8(AESOP, 144)           \
	ROUND8(AESOP, 160)           \
	ROUND8(AESOP, 176)           \
	ROUND8(AESOP, 192)           \
	ROUND8(AESOP, 208)           \
	ROUND8(AESLAST, 224)         \
	PXOR  X8, X0                 \
	PXOR  X9, X1                 \
	PXOR  X10, X2                \
	PXOR  X11, X3                \
	PXOR  X12, X4                \
	PXOR  X13, X5                \
	PXOR  X14, X6                \
	PXOR  X15, X7                \
	MOVOU X0, 0(DX)              \
	MOVOU X1, 16(DX)             \
	MOVOU X2, 32(DX)             \
	MOVOU X3, 48(DX)             \
	MOVOU X4, 64(DX)             \
	MOVOU X5, 80(DX)             \
	MOVOU X6, 96(DX)             \
	MOVOU X7, 112(DX)            \
	MOVOU gf128<>(SB), X1        \
	MULX(X15, X8, X0, X1)

// XTS1 en- or decrypts the block at (SI) into (DX) with tweak X8, then advances X8.
#define XTS1(AESOP, AESLAST)     \
	MOVOU   (SI), X0             \
	PXOR    X8, X0               \
	PXOR    0(DI), X0            \
	AESOP   16(DI), X0           \
	AESOP   32(DI), X0           \
	AESOP   48(DI), X0           \
	AESOP   64(DI), X0           \
	AESOP   80(DI), X0           \
	AESOP   96(DI), X0           \
	AESOP   112(DI), X0          \
	AESOP   128(DI), X0          \
	AESOP   144(DI), X0          \
	AESOP   160(DI), X0          \
	AESOP   176(DI), X0          \
	AESOP   192(DI), X0          \
	AESOP   208(DI), X0          \
	AESLAST 224(DI), X0          \
	PXOR    X8, X0               \
	MOVOU   X0, (DX)             \
	MOVOU   gf128<>(SB), X1      \
	MULX(X8, X8, X2, X1)

// TWEAKROUND8 applies one AES round with tweak-key round key off(R12) to X0-X7.
#define TWEAKROUND8(AESOP, off) \
	AESOP off(R12), X0 \
	AESOP off(R12), X1 \
	AESOP off(R12), X2 \
	AESOP off(R12), X3 \
	AESOP off(R12), X4 \
	AESOP off(R12), X5 \
	AESOP off(R12), X6 \
	AESOP off(R12), X7

// TWEAKS8 stores the first tweaks of sectors R8 … R8+7 in the frame: each is
// the 128-bit little-endian sector number encrypted with the tweak key.
#define TWEAKS8                    \
	MOVQ R8, X0                    \
	LEAQ 1(R8), AX                 \
	MOVQ AX, X1                    \
	LEAQ 2(R8), AX                 \
	MOVQ AX, X2                    \
	LEAQ 3(R8), AX                 \
	MOVQ AX, X3                    \
	LEAQ 4(R8), AX                 \
	MOVQ AX, X4                    \
	LEAQ 5(R8), AX                 \
	MOVQ AX, X5                    \
	LEAQ 6(R8), AX                 \
	MOVQ AX, X6                    \
	LEAQ 7(R8), AX                 \
	MOVQ AX, X7                    \
	TWEAKROUND8(PXOR, 0)           \
	TWEAKROUND8(AESENC, 16)        \
	TWEAKROUND8(AESENC, 32)        \
	TWEAKROUND8(AESENC, 48)        \
	TWEAKROUND8(AESENC, 64)        \
	TWEAKROUND8(AESENC, 80)        \
	TWEAKROUND8(AESENC, 96)        \
	TWEAKROUND8(AESENC, 112)       \
	TWEAKROUND8(AESENC, 128)       \
	TWEAKROUND8(AESENC, 144)       \
	TWEAKROUND8(AESENC, 160)       \
	TWEAKROUND8(AESENC, 176)       \
	TWEAKROUND8(AESENC, 192)       \
	TWEAKROUND8(AESENC, 208)       \
	TWEAKROUND8(AESENCLAST, 224)   \
	MOVOU X0, 0(SP)                \
	MOVOU X1, 16(SP)               \
	MOVOU X2, 32(SP)               \
	MOVOU X3, 48(SP)               \
	MOVOU X4, 64(SP)               \
	MOVOU X5, 80(SP)               \
	MOVOU X6, 96(SP)               \
	MOVOU X7, 112(SP)

// TWEAKS1 sets X8 to the first tweak of sector R8; it stays in the register
// (no store and reload through the frame: this is the latency of a one-sector
// call).
#define TWEAKS1                    \
	MOVQ       R8, X0              \
	PXOR       0(R12), X0          \
	AESENC     16(R12), X0         \
	AESENC     32(R12), X0         \
	AESENC     48(R12), X0         \
	AESENC     64(R12), X0         \
	AESENC     80(R12), X0         \
	AESENC     96(R12), X0         \
	AESENC     112(R12), X0        \
	AESENC     128(R12), X0        \
	AESENC     144(R12), X0        \
	AESENC     160(R12), X0        \
	AESENC     176(R12), X0        \
	AESENC     192(R12), X0        \
	AESENC     208(R12), X0        \
	AESENCLAST 224(R12), X0        \
	MOVO       X0, X8

// XTSBODY processes the sectors; DI and R12 are set by the caller.
#define XTSBODY(AESOP, AESLAST)    \
	MOVQ  dst+8(FP), DX            \
	MOVQ  src+16(FP), SI           \
	MOVQ  sectorSize+24(FP), CX    \
	MOVQ  sectors+32(FP), BX       \
	MOVQ  sector+40(FP), R8        \
	TESTQ BX, BX                   \
	JZ    done                     \
group:                             \
	CMPQ BX, $8                    \
	JB   one                       \
	TWEAKS8                        \
	ADDQ $8, R8                    \
	MOVQ $8, R10                   \
	JMP  firstSector               \
one:                               \
	TWEAKS1                        \
	INCQ R8                        \
	MOVQ $1, R10                   \
	JMP  haveTweak                 \
firstSector:                       \
	LEAQ 0(SP), R11                \
sector:                            \
	MOVOU (R11), X8                \
haveTweak:                         \
	MOVQ  CX, R9                   \
	CMPQ  R9, $128                 \
	JB    tail                     \
loop8:                             \
	XTS8(AESOP, AESLAST)           \
	ADDQ  $128, SI                 \
	ADDQ  $128, DX                 \
	SUBQ  $128, R9                 \
	CMPQ  R9, $128                 \
	JAE   loop8                    \
tail:                              \
	TESTQ R9, R9                   \
	JZ    sectorDone               \
loop1:                             \
	XTS1(AESOP, AESLAST)           \
	ADDQ  $16, SI                  \
	ADDQ  $16, DX                  \
	SUBQ  $16, R9                  \
	JNZ   loop1                    \
sectorDone:                        \
	ADDQ  $16, R11                 \
	DECQ  BX                       \
	DECQ  R10                      \
	JNZ   sector                   \
	TESTQ BX, BX                   \
	JNZ   group                    \
done:                              \
	PXOR  X0, X0                   \
	MOVOU X0, 0(SP)                \
	MOVOU X0, 16(SP)               \
	MOVOU X0, 32(SP)               \
	MOVOU X0, 48(SP)               \
	MOVOU X0, 64(SP)               \
	MOVOU X0, 80(SP)               \
	MOVOU X0, 96(SP)               \
	MOVOU X0, 112(SP)              \
	PXOR  X1, X1                   \
	PXOR  X2, X2                   \
	PXOR  X3, X3                   \
	PXOR  X4, X4                   \
	PXOR  X5, X5                   \
	PXOR  X6, X6                   \
	PXOR  X7, X7                   \
	PXOR  X8, X8                   \
	PXOR  X9, X9                   \
	PXOR  X10, X10                 \
	PXOR  X11, X11                 \
	PXOR  X12, X12                 \
	PXOR  X13, X13                 \
	PXOR  X14, X14                 \
	PXOR  X15, X15                 \
	RET

// func encryptAESNI(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)
TEXT ·encryptAESNI(SB), NOSPLIT, $128-48
	MOVQ ks+0(FP), DI
	LEAQ 480(DI), R12
	XTSBODY(AESENC, AESENCLAST)

// func decryptAESNI(ks *schedule, dst, src *byte, sectorSize, sectors int, sector uint64)
TEXT ·decryptAESNI(SB), NOSPLIT, $128-48
	MOVQ ks+0(FP), DI
	LEAQ 480(DI), R12
	ADDQ $240, DI
	XTSBODY(AESDEC, AESDECLAST)
