module github.com/cryptvol/cryptvol

go 1.26.0

require (
	github.com/awnumar/memguard v0.23.0
	github.com/hanwen/go-fuse/v2 v2.12.1
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)

require github.com/awnumar/memcall v0.4.0 // indirect
