module github.com/beepchat/beep/services/gateway

go 1.26.5

require (
	connectrpc.com/connect v1.21.1
	connectrpc.com/grpchealth v1.5.0
	connectrpc.com/grpcreflect v1.3.1
	github.com/prometheus/client_golang v1.23.2
	golang.org/x/time v0.16.0
	google.golang.org/protobuf v1.36.12
)
