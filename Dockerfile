# Builds the beep binary (all components; `beep serve` runs them).
FROM golang:1.26 AS build
WORKDIR /src
COPY . .
RUN go build -trimpath -o /out/beep ./cmd/beep

FROM gcr.io/distroless/base-debian12
COPY --from=build /out/beep /usr/local/bin/beep
USER nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/beep"]
CMD ["serve"]
