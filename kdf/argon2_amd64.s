//go:build !purego

#include "textflag.h"

// Argon2's compression function G (RFC 9106 §3.5, §3.6) with SSE2, which every
// amd64 CPU has. An XMM register holds two of the 64-bit words of P's 4×4
// matrix, so each GB below runs two columns (or diagonals) at once, and G2
// runs two of those, interleaved for the CPU's parallelism: P is two G2 with
// the words moved into diagonal order between them and back after.
//
// Registers:
//	DI, SI, DX  out, x, y
//	CX          the xor flag
//	R8, R9      R = x ⊕ y and Q (P applied to R's rows) in the frame
//	BX          offset of the row (first pass) or column (second pass)
//	X0-X7       the sixteen words P works on, two by two
//	X8-X11      the words of X2, X3, X6 and X7 in diagonal order
//	X14, X15    scratch
//
// The frame holds values derived from the passphrase (as the working memory
// does), never the key, and is left as it is.

// BLAMKA sets a += b + 2·lo(a)·lo(b) in both halves (the BlaMka addition;
// PMULULQ multiplies the low 32 bits of each 64-bit half).
#define BLAMKA(a, b, t) \
	MOVO    a, t; \
	PMULULQ b, t; \
	PADDQ   b, a; \
	PADDQ   t, a; \
	PADDQ   t, a

// Rotations right of each 64-bit half: by 32 swaps its 32-bit halves
// (PSHUFD), by 16 rotates its 16-bit words (PSHUFLW, PSHUFHW), by 63 is a
// rotation left by one.
#define ROTR32(x) \
	PSHUFD $0xb1, x, x

#define ROTR24(x, t) \
	MOVO  x, t; \
	PSRLQ $24, x; \
	PSLLQ $40, t; \
	PXOR  t, x

#define ROTR16(x) \
	PSHUFLW $0x39, x, x; \
	PSHUFHW $0x39, x, x

#define ROTR63(x, t) \
	MOVO  x, t; \
	PSRLQ $63, t; \
	PADDQ x, x; \
	PXOR  t, x

// G2 is GB (§3.6) on (a1, b1, c1, d1) and on (a2, b2, c2, d2), four columns
// or diagonals of the matrix.
#define G2(a1, b1, c1, d1, a2, b2, c2, d2) \
	BLAMKA(a1, b1, X14); BLAMKA(a2, b2, X15); \
	PXOR   a1, d1; PXOR a2, d2; \
	ROTR32(d1); ROTR32(d2); \
	BLAMKA(c1, d1, X14); BLAMKA(c2, d2, X15); \
	PXOR   c1, b1; PXOR c2, b2; \
	ROTR24(b1, X14); ROTR24(b2, X15); \
	BLAMKA(a1, b1, X14); BLAMKA(a2, b2, X15); \
	PXOR   a1, d1; PXOR a2, d2; \
	ROTR16(d1); ROTR16(d2); \
	BLAMKA(c1, d1, X14); BLAMKA(c2, d2, X15); \
	PXOR   c1, b1; PXOR c2, b2; \
	ROTR63(b1, X14); ROTR63(b2, X15)

// PERMUTE is P on v0…v15 in X0 = (v0, v1) … X7 = (v14, v15): GB on the
// columns (v0, v4, v8, v12) … (v3, v7, v11, v15), then on the diagonals
// (v0, v5, v10, v15), (v1, v6, v11, v12), (v2, v7, v8, v13), (v3, v4, v9, v14).
// For the diagonals b is (v5, v6), (v7, v4), c is X5, X4 and d is (v15, v12),
// (v13, v14); PSHUFD $0x4e swaps the halves of a register and PUNPCKLQDQ puts
// the low half of another into the high half.
#define PERMUTE \
	G2(X0, X2, X4, X6, X1, X3, X5, X7); \
	PSHUFD $0x4e, X2, X8; PUNPCKLQDQ X3, X8; \
	PSHUFD $0x4e, X3, X9; PUNPCKLQDQ X2, X9; \
	PSHUFD $0x4e, X7, X10; PUNPCKLQDQ X6, X10; \
	PSHUFD $0x4e, X6, X11; PUNPCKLQDQ X7, X11; \
	G2(X0, X8, X5, X10, X1, X9, X4, X11); \
	PSHUFD $0x4e, X9, X2; PUNPCKLQDQ X8, X2; \
	PSHUFD $0x4e, X8, X3; PUNPCKLQDQ X9, X3; \
	PSHUFD $0x4e, X10, X6; PUNPCKLQDQ X11, X6; \
	PSHUFD $0x4e, X11, X7; PUNPCKLQDQ X10, X7

// LOADROW loads words 2k, 2k+1 of the row at BX of x ⊕ y into reg, and keeps
// them in R.
#define LOADROW(off, reg) \
	MOVOU off(SI)(BX*1), reg; \
	MOVOU off(DX)(BX*1), X14; \
	PXOR  X14, reg; \
	MOVOU reg, off(R8)(BX*1)

// STORE writes word pair reg of the column at BX: R ⊕ Q, XORed into out
// when xorOut.
#define STORE(off, reg) \
	MOVOU off(R8)(BX*1), X14; \
	PXOR  X14, reg; \
	MOVOU reg, off(DI)(BX*1)

#define STOREXOR(off, reg) \
	MOVOU off(R8)(BX*1), X14; \
	MOVOU off(DI)(BX*1), X15; \
	PXOR  X14, reg; \
	PXOR  X15, reg; \
	MOVOU reg, off(DI)(BX*1)

// func compressSSE2(out, x, y *argonBlock, xor bool)
TEXT ·compressSSE2(SB), 0, $2048-25
	MOVQ    out+0(FP), DI
	MOVQ    x+8(FP), SI
	MOVQ    y+16(FP), DX
	MOVBQZX xor+24(FP), CX
	LEAQ    0(SP), R8
	LEAQ    1024(SP), R9

	// P on each row of R = x ⊕ y (16 words, 128 bytes), into Q. out may
	// be x or y: it is not written until every row is read.
	XORQ BX, BX

rows:
	LOADROW(0, X0)
	LOADROW(16, X1)
	LOADROW(32, X2)
	LOADROW(48, X3)
	LOADROW(64, X4)
	LOADROW(80, X5)
	LOADROW(96, X6)
	LOADROW(112, X7)
	PERMUTE
	MOVOU X0, 0(R9)(BX*1)
	MOVOU X1, 16(R9)(BX*1)
	MOVOU X2, 32(R9)(BX*1)
	MOVOU X3, 48(R9)(BX*1)
	MOVOU X4, 64(R9)(BX*1)
	MOVOU X5, 80(R9)(BX*1)
	MOVOU X6, 96(R9)(BX*1)
	MOVOU X7, 112(R9)(BX*1)
	ADDQ  $128, BX
	CMPQ  BX, $1024
	JB    rows

	// P on each column of Q (words 2i and 2i+1 of every row), then
	// out = R ⊕ Q, or out ^= R ⊕ Q.
	XORQ BX, BX

cols:
	MOVOU 0(R9)(BX*1), X0
	MOVOU 128(R9)(BX*1), X1
	MOVOU 256(R9)(BX*1), X2
	MOVOU 384(R9)(BX*1), X3
	MOVOU 512(R9)(BX*1), X4
	MOVOU 640(R9)(BX*1), X5
	MOVOU 768(R9)(BX*1), X6
	MOVOU 896(R9)(BX*1), X7
	PERMUTE
	TESTQ CX, CX
	JNZ   xorout
	STORE(0, X0)
	STORE(128, X1)
	STORE(256, X2)
	STORE(384, X3)
	STORE(512, X4)
	STORE(640, X5)
	STORE(768, X6)
	STORE(896, X7)
	JMP   next

xorout:
	STOREXOR(0, X0)
	STOREXOR(128, X1)
	STOREXOR(256, X2)
	STOREXOR(384, X3)
	STOREXOR(512, X4)
	STOREXOR(640, X5)
	STOREXOR(768, X6)
	STOREXOR(896, X7)

next:
	ADDQ $16, BX
	CMPQ BX, $128
	JB   cols
	RET
