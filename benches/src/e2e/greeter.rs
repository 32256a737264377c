//! The gRPC service of the end-to-end arms: `helloworld.Greeter/SayHello` echoing its payload,
//! generated from `proto/helloworld.proto` by the build script.

use tonic::service::Routes;
use tonic::{Request, Response, Status};

/// The `helloworld.Greeter` client and server generated from `proto/helloworld.proto`.
pub mod proto {
    #![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

    tonic::include_proto!("helloworld");
}

use proto::greeter_server::{Greeter, GreeterServer};
use proto::{HelloReply, HelloRequest};

/// Answers each call with the request's payload, so request and response are the same size.
#[derive(Clone, Copy, Debug, Default)]
pub struct EchoGreeter;

#[tonic::async_trait]
impl Greeter for EchoGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let HelloRequest { name, payload } = request.into_inner();
        Ok(Response::new(HelloReply {
            message: name,
            payload,
        }))
    }
}

/// The greeter as tonic `Routes`, servable by hyper or by mesh.
pub fn routes() -> Routes {
    Routes::new(GreeterServer::new(EchoGreeter))
}
