module github.com/beepchat/beep/gen

go 1.26.5

require (
	connectrpc.com/connect v1.21.1
	google.golang.org/protobuf v1.36.12
)
