//go:build amd64

#include "textflag.h"

// Each loop runs n iterations of 16 instructions of the kind it measures.

// func addChain(n int): 16 dependent register-to-register ADDs per iteration.
//
// The addend is a register, not an immediate: a chain of ADD reg, imm read as
// a 21.54 GHz clock on an Intel Xeon, whose core evidently resolves such chains
// at register renaming, several per cycle. ADD reg, reg has a latency of one
// cycle on every x86-64 core.
TEXT ·addChain(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	XORQ AX, AX
	MOVQ $1, BX
addLoop:
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	ADDQ BX, AX
	DECQ CX
	JNZ  addLoop
	RET

// func imulChain(n int): 16 dependent 64-bit IMULs per iteration, three cycles
// each on every Intel core since Nehalem and every AMD core since Zen: the
// cross-check of addChain.
TEXT ·imulChain(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	MOVQ $1, AX
	MOVQ $3, BX
imulLoop:
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	IMULQ BX, AX
	DECQ CX
	JNZ  imulLoop
	RET

// func addChainZMM(n int): addChain with one independent 512-bit VAESENC in each
// iteration, to measure the clock while 512-bit AES instructions run (Intel
// cores may lower it for them). Sixteen dependent ADDs take sixteen cycles;
// the VAESENC is off their path.
TEXT ·addChainZMM(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	XORQ   AX, AX
	MOVQ   $1, BX
	VPXORD Z8, Z8, Z8
addZMMLoop:
	VAESENC Z8, Z0, Z0
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	ADDQ    BX, AX
	DECQ    CX
	JNZ     addZMMLoop
	VZEROUPPER
	RET

// func aesencXMM(n int): eight independent chains of AESENC.
TEXT ·aesencXMM(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	PXOR X8, X8
aesLoop:
	AESENC X8, X0
	AESENC X8, X1
	AESENC X8, X2
	AESENC X8, X3
	AESENC X8, X4
	AESENC X8, X5
	AESENC X8, X6
	AESENC X8, X7
	AESENC X8, X0
	AESENC X8, X1
	AESENC X8, X2
	AESENC X8, X3
	AESENC X8, X4
	AESENC X8, X5
	AESENC X8, X6
	AESENC X8, X7
	DECQ CX
	JNZ  aesLoop
	RET

// func vaesencYMM(n int): eight independent chains of 256-bit VAESENC.
TEXT ·vaesencYMM(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	VPXOR  Y8, Y8, Y8
loopYMM:
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y1, Y1
	VAESENC Y8, Y2, Y2
	VAESENC Y8, Y3, Y3
	VAESENC Y8, Y4, Y4
	VAESENC Y8, Y5, Y5
	VAESENC Y8, Y6, Y6
	VAESENC Y8, Y7, Y7
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y1, Y1
	VAESENC Y8, Y2, Y2
	VAESENC Y8, Y3, Y3
	VAESENC Y8, Y4, Y4
	VAESENC Y8, Y5, Y5
	VAESENC Y8, Y6, Y6
	VAESENC Y8, Y7, Y7
	DECQ CX
	JNZ  loopYMM
	VZEROUPPER
	RET

// func vaesencYMMChain(n int): one chain of 256-bit VAESENC.
TEXT ·vaesencYMMChain(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	VPXOR  Y8, Y8, Y8
chainYMM:
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	VAESENC Y8, Y0, Y0
	DECQ CX
	JNZ  chainYMM
	VZEROUPPER
	RET

// func vaesencZMM(n int): eight independent chains of 512-bit VAESENC.
TEXT ·vaesencZMM(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	VPXORD Z8, Z8, Z8
loopZMM:
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z1, Z1
	VAESENC Z8, Z2, Z2
	VAESENC Z8, Z3, Z3
	VAESENC Z8, Z4, Z4
	VAESENC Z8, Z5, Z5
	VAESENC Z8, Z6, Z6
	VAESENC Z8, Z7, Z7
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z1, Z1
	VAESENC Z8, Z2, Z2
	VAESENC Z8, Z3, Z3
	VAESENC Z8, Z4, Z4
	VAESENC Z8, Z5, Z5
	VAESENC Z8, Z6, Z6
	VAESENC Z8, Z7, Z7
	DECQ CX
	JNZ  loopZMM
	VZEROUPPER
	RET

// func vaesencZMMChain(n int): one chain of 512-bit VAESENC.
TEXT ·vaesencZMMChain(SB), NOSPLIT, $0-8
	MOVQ   n+0(FP), CX
	VPXORD Z8, Z8, Z8
chainZMM:
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	VAESENC Z8, Z0, Z0
	DECQ CX
	JNZ  chainZMM
	VZEROUPPER
	RET
