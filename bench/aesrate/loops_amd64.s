//go:build amd64

#include "textflag.h"

// Each loop runs n iterations of 16 instructions of the kind it measures.

// func addChain(n int): 16 dependent ADDs per iteration.
TEXT ·addChain(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	XORQ AX, AX
addLoop:
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	ADDQ $1, AX
	DECQ CX
	JNZ  addLoop
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
	MOVQ  n+0(FP), CX
	VPXOR Y8, Y8, Y8
vaesLoop:
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
	JNZ  vaesLoop
	VZEROUPPER
	RET

// func vaesencYMMChain(n int): one chain of 256-bit VAESENC.
TEXT ·vaesencYMMChain(SB), NOSPLIT, $0-8
	MOVQ  n+0(FP), CX
	VPXOR Y8, Y8, Y8
chainLoop:
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
	JNZ  chainLoop
	VZEROUPPER
	RET
