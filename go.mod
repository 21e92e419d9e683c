module github.com/sipua/sip

go 1.26

require github.com/stretchr/testify v1.12.1

require (
	github.com/gorilla/websocket v1.5.3 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
